"""Fitting beyond the stream: one Lloyd step, and inertia. No I/O. (A new generation is
fitted by app/clustering/generation.py.)"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from app.clustering.model import DTYPE, OnlineKMeans

_CHUNK = 65536  # rows per block of the inertia pass, to bound n x d temporaries


def lloyd_step(model: OnlineKMeans, pages: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """One Lloyd iteration over rows given page by page (bounded memory): each centre moves to
    the mean of the rows nearest it; a centre with none keeps its place. Returns the new
    (k, d) centres, not yet set on the model, and how many rows were read.

    Rows are added in the order given, unbuffered, so the same pages give bit-identical
    centres (what lets a restored trainer resume exactly)."""
    k = model.n_clusters
    sums = np.zeros((k, model.n_features), dtype=DTYPE)
    members = np.zeros(k, dtype=np.int64)
    for page in pages:
        rows = page.astype(DTYPE)
        labels = model.predict(rows)
        np.add.at(sums, labels, rows)
        members += np.bincount(labels, minlength=k)
    centers = model.centers
    kept = members > 0
    centers[kept] = sums[kept] / members[kept, None]
    return centers, int(members.sum())


def inertia(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances from each row to its assigned centre, computed directly (no
    |x|^2 - 2xc + |c|^2 expansion, which loses precision near the centre)."""
    total = 0.0
    for start in range(0, X.shape[0], _CHUNK):
        block = np.asarray(X[start : start + _CHUNK], dtype=DTYPE)
        diff = block - centers[labels[start : start + _CHUNK]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total
