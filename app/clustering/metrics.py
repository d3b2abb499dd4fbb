"""Cluster quality metrics for the current model, as a JSON-ready dict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from app.clustering.fitting import inertia
from app.clustering.model import DTYPE, OnlineKMeans


def compute_quality(
    X: np.ndarray, model: OnlineKMeans, *, sample_size: int, seed: int
) -> dict[str, Any]:
    """Silhouette (sampled), simplified silhouette, Davies-Bouldin, Calinski-Harabasz, inertia."""
    if sample_size < 1:
        raise ValueError(f"sample_size must be >= 1, got {sample_size}")
    X = np.ascontiguousarray(X, dtype=DTYPE)
    k = model.n_clusters
    n = X.shape[0]
    result: dict[str, Any] = {
        "n_clusters": k,
        "n_users": n,
        "silhouette": None,
        "silhouette_sample_size": 0,
        "simplified_silhouette": None,
        "davies_bouldin": None,
        "calinski_harabasz": None,
        "inertia": 0.0,
        "sizes": [0] * k,
    }
    if n == 0:
        return result

    distances = model.distances(X)
    labels = np.argmin(distances, axis=1)
    sizes = np.bincount(labels, minlength=k)
    result["sizes"] = [int(s) for s in sizes]
    result["inertia"] = inertia(X, model.centers, labels)
    populated = int((sizes > 0).sum())
    # sklearn's label metrics need 2 <= labels present <= n - 1
    if populated < 2 or n < 3:
        return result

    result["simplified_silhouette"] = _simplified_silhouette(distances, labels)
    if populated <= n - 1:
        result["davies_bouldin"] = _finite(davies_bouldin_score(X, labels))
        result["calinski_harabasz"] = _finite(calinski_harabasz_score(X, labels))

    # Full silhouette is O(n^2): computed on a seeded sample, in original row order.
    if n > sample_size:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
        X_s, labels_s = X[rows], labels[rows]
    else:
        X_s, labels_s = X, labels
    n_s = X_s.shape[0]
    result["silhouette_sample_size"] = n_s
    if 2 <= np.unique(labels_s).size <= n_s - 1:
        result["silhouette"] = _finite(silhouette_score(X_s, labels_s))
    return result


def _simplified_silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Centroid-based silhouette: a = own center, b = nearest other center, over all rows."""
    rows = np.arange(distances.shape[0])
    a = distances[rows, labels]
    others = distances.copy()
    others[rows, labels] = np.inf
    b = others.min(axis=1)
    denom = np.maximum(a, b)
    # a point equidistant at zero from two centers scores 0, as in sklearn's silhouette
    s = np.divide(b - a, denom, out=np.zeros_like(a), where=denom > 0)
    return float(s.mean())


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
