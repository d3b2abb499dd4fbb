"""The refit, the Lloyd step and inertia against plain numpy references."""

from __future__ import annotations

import numpy as np

from app.clustering.fitting import fit_multi_start, inertia, lloyd_step
from app.clustering.model import OnlineKMeans
from tests.clustering.synthetic import blobs, topic_centers

D = 8


def data(n: int = 400, topics: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return blobs(rng, topic_centers(rng, topics, D), n)


def fitted(X: np.ndarray, k: int = 4) -> OnlineKMeans:
    model = OnlineKMeans(n_clusters=k, n_features=D, half_life=None, batch_size=64, seed=1)
    model.partial_fit(X)
    return model


def brute_inertia(X: np.ndarray, centers: np.ndarray) -> float:
    squared = ((X[:, None, :].astype(np.float64) - centers[None, :, :]) ** 2).sum(axis=2)
    return float(squared.min(axis=1).sum())


def test_inertia_is_the_sum_of_squared_distances_to_the_nearest_centre() -> None:
    X = data()
    model = fitted(X)
    got = inertia(X, model.centers, model.predict(X))
    assert np.isclose(got, brute_inertia(X, model.centers), rtol=1e-12, atol=0)
    assert inertia(X, X[:4].astype(np.float64), np.zeros(len(X), dtype=np.int64)) > got


def test_lloyd_step_moves_each_centre_to_the_mean_of_its_members() -> None:
    X = data()
    model = fitted(X)
    labels = model.predict(X)
    centers, members = lloyd_step(model, [X])
    assert members == len(X)
    for c in range(model.n_clusters):
        assert np.allclose(centers[c], X[labels == c].astype(np.float64).mean(axis=0))
    assert not np.array_equal(centers, model.centers)  # it returns, it does not set
    assert inertia(X, centers, labels) <= inertia(X, model.centers, labels)


def test_lloyd_step_is_the_same_page_by_page_and_leaves_centres_without_members() -> None:
    X = data()
    model = fitted(X)
    far = model.centers
    far[0] = -far[0] * 10  # nothing lies near it any more
    model.set_centers(far)
    whole, _ = lloyd_step(model, [X])
    paged, _ = lloyd_step(model, [X[:150], X[150:300], X[300:]])
    assert np.array_equal(whole, paged)
    assert np.array_equal(whole[0], far[0])
    unchanged, none = lloyd_step(model, [])
    assert none == 0 and np.array_equal(unchanged, far)


def test_fit_multi_start_is_deterministic_and_keeps_the_best_start() -> None:
    X = data(n=300)
    kwargs = {"n_clusters": 4, "half_life": None, "batch_size": 64, "epochs": 3}
    best = fit_multi_start(X, seed=7, starts=3, **kwargs)
    again = fit_multi_start(X, seed=7, starts=3, **kwargs)
    assert np.array_equal(best.centers, again.centers)
    singles = [fit_multi_start(X, seed=7 + s, starts=1, **kwargs) for s in range(3)]
    scores = [brute_inertia(X, m.centers) for m in singles]
    assert any(np.array_equal(best.centers, m.centers) for m in singles)
    assert np.isclose(brute_inertia(X, best.centers), min(scores), rtol=1e-12, atol=0)
