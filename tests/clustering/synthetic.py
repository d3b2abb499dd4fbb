"""Synthetic L2-normalised float32 data for the clustering tests."""

from __future__ import annotations

import numpy as np


def normalise(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 like the embedding model's output."""
    rows = np.asarray(rows, dtype=np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def topic_centers(rng: np.random.Generator, n_topics: int, n_features: int) -> np.ndarray:
    """Random unit vectors standing for topics."""
    return normalise(rng.standard_normal((n_topics, n_features)))


def blobs(
    rng: np.random.Generator, centers: np.ndarray, n: int, *, spread: float = 0.15
) -> np.ndarray:
    """n unit rows scattered around randomly chosen centers."""
    picks = rng.integers(0, centers.shape[0], size=n)
    noise = rng.standard_normal((n, centers.shape[1])) * spread / np.sqrt(centers.shape[1])
    return normalise(centers[picks] + noise)
