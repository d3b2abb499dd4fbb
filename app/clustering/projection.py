"""The 2-D cluster map: a linear projection of the centres and of a sample of users. No I/O.

The plane is spanned by the principal axes of the centres, weighted by cluster size: the two
directions along which the clusters lie furthest apart, which is what a map of clusters is for
(PCA of the users would spend its axes on spread inside the big clusters). With fewer than
three distinct centres those axes do not span a plane; the missing axis is then the main
direction of the users' spread around their own centres. Each axis's sign is fixed (its
largest loading positive) so that a map does not flip from one model version to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_RANK_TOLERANCE = 1e-9  # singular values below this (relative to the largest) are no axis


@dataclass(frozen=True)
class Projection:
    centers: np.ndarray  # (k, 2)
    points: np.ndarray  # (n, 2)
    explained: float  # share of the size-weighted spread of the centres that the plane keeps


def project(
    centers: np.ndarray, sizes: np.ndarray, sample: np.ndarray, labels: np.ndarray
) -> Projection:
    """Project `centers` (k, d) and `sample` (n, d) onto the plane that separates the centres
    best, weighting each centre by its cluster's size (a size of 0 still counts a little).
    `labels` are the sample's clusters."""
    centers = np.asarray(centers, dtype=np.float64)
    sample = np.asarray(sample, dtype=np.float64).reshape(-1, centers.shape[1])
    weights = np.asarray(sizes, dtype=np.float64) + 1.0
    if centers.ndim != 2 or weights.shape != (len(centers),):
        raise ValueError(f"{len(weights)} sizes for centres of shape {centers.shape}")
    mean = weights @ centers / weights.sum()
    between = (centers - mean) * np.sqrt(weights / weights.sum())[:, None]
    axes, spread = _principal_axes(between, 2)
    total = float(np.square(between).sum())
    explained = float(spread.sum() / total) if total > 0 else 1.0
    if len(axes) < 2:
        axes = _complete(axes, sample - centers[np.asarray(labels, dtype=np.int64)])
    return Projection(
        centers=(centers - mean) @ axes.T,
        points=(sample - mean) @ axes.T,
        explained=min(explained, 1.0),
    )


def _principal_axes(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` unit axes of largest spread of the rows of `matrix` (already centred),
    and the spread (squared singular value) along each; axes of no spread are left out."""
    if not len(matrix):
        return np.empty((0, matrix.shape[1])), np.empty(0)
    _, singular, vt = np.linalg.svd(matrix, full_matrices=False)
    keep = singular > _RANK_TOLERANCE * max(float(singular[0]), 1e-300)
    axes = vt[keep][:count]
    for axis in axes:  # one sign per axis, whatever the SVD routine returned
        if axis[np.argmax(np.abs(axis))] < 0:
            axis *= -1
    return axes, np.square(singular[keep][:count])


def _complete(axes: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Add axes orthogonal to `axes` until there are two: the main direction of the users'
    spread around their own centres, else a fixed one (a map of identical points is a map)."""
    dim = residual.shape[1]
    candidates = np.vstack([_principal_axes(residual, 2)[0], np.eye(dim)])
    result = list(axes)
    for candidate in candidates:
        direction = candidate.copy()
        for axis in result:  # Gram-Schmidt: only what is new beside the axes already there
            direction -= (direction @ axis) * axis
        norm = float(np.linalg.norm(direction))
        if norm > 1e-6:
            result.append(direction / norm)
        if len(result) == 2:
            break
    return np.array(result[:2])
