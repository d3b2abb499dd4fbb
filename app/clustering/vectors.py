"""Profile sums -> unit float32 rows for clustering, vectorised: the one place that normalises."""

from __future__ import annotations

import numpy as np

# Below this norm a sum is treated as "no preference": like + dislike of the same text cancel
# to exactly 0 or to rounding noise (~1e-16), far below any real sum (the newest event alone
# contributes |w| * ||e|| = |w| at ref_time).
MIN_NORM = 1e-9


def unit_vectors(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kept): the (n, d) sums scaled to unit length as float32, leaving out those whose
    norm is not above MIN_NORM (they have no direction), and the indexes of the rows kept."""
    norms = np.linalg.norm(sums, axis=1)
    kept = np.flatnonzero(norms > MIN_NORM)
    return (sums[kept] / norms[kept, None]).astype(np.float32), kept


def unit_rows(blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """unit_vectors of stored profile sums (raw little-endian float64 bytes, `dim` each)."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32), np.empty(0, dtype=np.int64)
    return unit_vectors(np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(blobs), dim))
