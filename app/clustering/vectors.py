"""Profile sums -> unit float32 rows for clustering, vectorised: the one place that normalises."""

from __future__ import annotations

import numpy as np

# Below this norm a sum is treated as "no preference": like + dislike of the same text cancel
# to exactly 0 or to rounding noise (~1e-16), far below any real sum (the newest event alone
# contributes |w| * ||e|| = |w| at ref_time).
MIN_NORM = 1e-9


def unit_vectors(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kept): the (n, d) sums scaled to unit length as float32, leaving out those whose
    norm is not above MIN_NORM (they have no direction), and the indexes of the rows kept.

    A sum that is not finite has no direction either and is left out. A finite sum whose squared
    norm overflows (components beyond ~1e154) is scaled first, so it keeps its direction instead
    of becoming a zero vector that would still be placed somewhere."""
    finite = np.isfinite(sums).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(sums, axis=1)
    huge = finite & ~np.isfinite(norms)
    if huge.any():
        sums = sums.copy()
        sums[huge] /= np.abs(sums[huge]).max(axis=1, keepdims=True)
        norms[huge] = np.linalg.norm(sums[huge], axis=1)
    kept = np.flatnonzero(finite & (norms > MIN_NORM))
    return (sums[kept] / norms[kept, None]).astype(np.float32), kept


def unit_rows(blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """unit_vectors of stored profile sums (raw little-endian float64 bytes, `dim` each)."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    return unit_vectors(np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), dim))
