"""Profile sums (raw float64 bytes) -> unit float32 rows for clustering, vectorised."""

from __future__ import annotations

import numpy as np

from app.profile.math import MIN_NORM


def unit_rows(blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kept): normalised vectors of the sums whose norm is not ~0, and their indexes."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    sums = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), dim)
    norms = np.linalg.norm(sums, axis=1)
    kept = np.flatnonzero(norms > MIN_NORM)
    return (sums[kept] / norms[kept, None]).astype(np.float32), kept
