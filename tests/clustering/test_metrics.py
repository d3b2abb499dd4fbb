"""compute_quality against sklearn and naive reference implementations."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from app.clustering.metrics import compute_quality
from app.clustering.model import OnlineKMeans
from tests.clustering.synthetic import blobs, normalise, topic_centers

D = 16
KEYS = {
    "n_clusters",
    "n_users",
    "silhouette",
    "silhouette_sample_size",
    "simplified_silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "inertia",
    "sizes",
}


def fitted(X: np.ndarray, k: int = 4) -> OnlineKMeans:
    model = OnlineKMeans(n_clusters=k, n_features=X.shape[1], half_life=None, batch_size=256)
    model.partial_fit(X)
    return model


def data(n: int, seed: int = 0, topics: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return blobs(rng, topic_centers(rng, topics, D), n, spread=0.5)


def naive_simplified_silhouette(X: np.ndarray, centers: np.ndarray) -> float:
    scores = []
    for x in X.astype(np.float64):
        d = [float(np.sqrt(((x - c) ** 2).sum())) for c in centers]
        own = int(np.argmin(d))
        a = d[own]
        b = min(d[j] for j in range(len(d)) if j != own)
        scores.append(0.0 if max(a, b) == 0 else (b - a) / max(a, b))
    return sum(scores) / len(scores)


def test_agrees_with_sklearn_and_direct_computation() -> None:
    X = data(300)
    model = fitted(X)
    labels = model.predict(X)
    X64 = X.astype(np.float64)
    q = compute_quality(X, model, sample_size=300, seed=0)

    assert set(q) == KEYS
    assert q["n_clusters"] == 4 and q["n_users"] == 300
    # sample_size >= n means no sampling: exactly sklearn's full silhouette
    assert q["silhouette_sample_size"] == 300
    assert q["silhouette"] == silhouette_score(X64, labels)
    assert q["davies_bouldin"] == davies_bouldin_score(X64, labels)
    assert q["calinski_harabasz"] == calinski_harabasz_score(X64, labels)
    assert q["sizes"] == np.bincount(labels, minlength=4).tolist()
    direct = sum(
        float(((x - model.centers[c]) ** 2).sum()) for x, c in zip(X64, labels, strict=True)
    )
    assert q["inertia"] == pytest.approx(direct, rel=1e-12)
    assert q["simplified_silhouette"] == pytest.approx(
        naive_simplified_silhouette(X, model.centers), rel=1e-9
    )
    # plain Python values only, so the result is ready for a JSON column
    assert json.loads(json.dumps(q, allow_nan=False)) == q
    assert all(type(s) is int for s in q["sizes"])


def test_silhouette_is_sampled_with_the_seed() -> None:
    X = data(1200, seed=1)
    model = fitted(X)
    full = silhouette_score(X.astype(np.float64), model.predict(X))
    a = compute_quality(X, model, sample_size=400, seed=5)
    b = compute_quality(X, model, sample_size=400, seed=5)
    c = compute_quality(X, model, sample_size=400, seed=6)
    assert a["silhouette_sample_size"] == 400
    assert a == b
    assert a["silhouette"] != c["silhouette"]
    assert a["silhouette"] == pytest.approx(full, abs=0.1)
    # everything but the silhouette uses all rows
    assert a["inertia"] == c["inertia"] and a["sizes"] == c["sizes"]


def test_one_populated_cluster_has_no_separation_metrics() -> None:
    model = fitted(data(300))
    # rows right at one center all land in that cluster
    X = np.repeat(model.centers[:1], 10, axis=0) + 1e-4
    q = compute_quality(X, model, sample_size=100, seed=0)
    assert sorted(q["sizes"]) == [0, 0, 0, 10]
    for key in ("silhouette", "simplified_silhouette", "davies_bouldin", "calinski_harabasz"):
        assert q[key] is None


@pytest.mark.parametrize("n", [0, 2])
def test_too_few_rows(n: int) -> None:
    model = fitted(data(300))
    q = compute_quality(data(300)[:n], model, sample_size=100, seed=0)
    assert q["n_users"] == n and sum(q["sizes"]) == n
    assert q["silhouette"] is None and q["simplified_silhouette"] is None


def test_large_population_is_fast() -> None:
    rng = np.random.default_rng(3)
    topics = topic_centers(rng, 8, 384)
    noise = rng.standard_normal((100_000, 384), dtype=np.float32) * np.float32(0.05)
    X = normalise(topics[rng.integers(0, 8, 100_000)] + noise)
    model = fitted(X[:5000], k=8)
    start = time.perf_counter()
    q = compute_quality(X, model, sample_size=2000, seed=0)
    elapsed = time.perf_counter() - start
    assert q["n_users"] == 100_000 and q["silhouette_sample_size"] == 2000
    # about 1 s on an idle 2-core box; the bound is loose for loaded CI machines but still
    # catches an O(n^2) pass over all rows, which takes minutes
    assert elapsed < 30.0, f"compute_quality took {elapsed:.1f}s for 100k x 384"
