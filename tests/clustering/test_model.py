"""OnlineKMeans: chunked partial_fit, distances/predict, seeding and forgetting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.clustering.model import NotFittedError, OnlineKMeans
from tests.clustering.synthetic import blobs, normalise, topic_centers

D = 16


def make(**overrides: object) -> OnlineKMeans:
    params: dict = {"n_clusters": 4, "n_features": D, "half_life": None, "batch_size": 64}
    params.update(overrides)
    return OnlineKMeans(**params)


def test_unfitted_model_refuses_queries() -> None:
    model = make()
    assert not model.fitted
    assert model.n_steps == 0
    with pytest.raises(NotFittedError):
        model.distances(np.zeros((1, D), dtype=np.float32))
    with pytest.raises(NotFittedError):
        _ = model.centers


def test_partial_fit_takes_one_step_per_chunk() -> None:
    rng = np.random.default_rng(0)
    model = make(batch_size=50)
    model.partial_fit(blobs(rng, topic_centers(rng, 4, D), 120))
    assert model.fitted
    assert model.n_steps == math.ceil(120 / 50)
    model.partial_fit(blobs(rng, topic_centers(rng, 4, D), 7))
    assert model.n_steps == 4
    model.partial_fit(np.empty((0, D), dtype=np.float32))
    assert model.n_steps == 4
    assert model.centers.shape == (4, D)
    assert model.centers.dtype == np.float64


def test_every_chunk_can_initialise_the_model() -> None:
    rng = np.random.default_rng(4)
    # 9 rows in batches of 8 would split 5 + 4, too few to seed 8 clusters
    model = make(n_clusters=8, batch_size=8)
    model.partial_fit(blobs(rng, topic_centers(rng, 8, D), 9))
    assert model.fitted and model.n_steps == 1


def test_first_batch_needs_a_row_per_cluster() -> None:
    with pytest.raises(ValueError, match="at least n_clusters=4 rows"):
        make().partial_fit(normalise(np.eye(D)[:3]))


@pytest.mark.parametrize(
    "bad", [np.zeros((5, D + 1)), np.zeros(D), np.full((5, D), np.nan)], ids=["dim", "1d", "nan"]
)
def test_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        make().partial_fit(bad)


@pytest.mark.parametrize(
    "params",
    [{"batch_size": 3}, {"half_life": -1.0}, {"half_life": math.inf}, {"n_clusters": 0}],
)
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(ValueError):
        make(**params)


def test_same_seed_same_model_other_seed_other_model() -> None:
    rng = np.random.default_rng(1)
    X = blobs(rng, topic_centers(rng, 6, D), 400)
    a, b, c = make(seed=5), make(seed=5), make(seed=6)
    for model in (a, b, c):
        model.partial_fit(X)
    assert np.array_equal(a.centers, b.centers)
    assert not np.array_equal(a.centers, c.centers)


def test_distances_and_predict_match_direct_computation() -> None:
    rng = np.random.default_rng(2)
    X = blobs(rng, topic_centers(rng, 4, D), 300)
    model = make()
    model.partial_fit(X)
    direct = np.linalg.norm(X.astype(np.float64)[:, None, :] - model.centers[None], axis=2)
    assert np.allclose(model.distances(X), direct, rtol=0, atol=1e-7)
    labels = model.predict(X)
    assert np.array_equal(labels, direct.argmin(axis=1))
    # the sklearn estimator agrees with our argmin on the same float64 input
    assert np.array_equal(labels, model.estimator.predict(X.astype(np.float64)))
    # a point exactly on a center is at distance 0, never NaN from rounding below zero
    self_distances = np.diagonal(model.distances(model.centers))
    assert np.isfinite(self_distances).all() and self_distances.max() < 1e-6


@pytest.mark.parametrize("half_life", [None, 0.0, 200.0])
def test_counts_decay_by_the_half_life_rule(half_life: float | None) -> None:
    rng = np.random.default_rng(3)
    topics = topic_centers(rng, 4, D)
    model = make(half_life=half_life)
    model.partial_fit(blobs(rng, topics, 200))
    model.estimator.reassignment_ratio = 0.0  # isolate forgetting from count resets
    before = model.counts.sum()
    n = 48
    model.partial_fit(blobs(rng, topics, n))
    alpha = 0.5 ** (n / half_life) if half_life else 1.0
    assert model.counts.sum() == pytest.approx(before * alpha + n, rel=1e-12)
    assert model.forgetting_factor(n) == pytest.approx(alpha)


def _drift_error(half_life: float | None) -> tuple[float, float]:
    """Train on topics A, then on topics B (each A moved); error of centers w.r.t. B."""
    rng = np.random.default_rng(11)
    k = 4
    old = topic_centers(rng, k, D)
    new = normalise(old + 0.9 * topic_centers(rng, k, D))
    model = make(n_clusters=k, half_life=half_life, seed=2)
    for _ in range(40):
        model.partial_fit(blobs(rng, old, 200, spread=0.1))
    for _ in range(8):
        model.partial_fit(blobs(rng, new, 200, spread=0.1))
    # distance from each new topic to its nearest center; old->new move as the scale
    error = float(model.distances(new).min(axis=1).mean())
    shift = float(np.linalg.norm(new - old, axis=1).mean())
    return error, shift


def test_forgetting_follows_drifting_interests() -> None:
    remembering, shift = _drift_error(None)
    forgetting, _ = _drift_error(400.0)
    # without forgetting, 8k old rows pin the centers near the old topics
    assert remembering > 0.5 * shift
    # with forgetting the centers reach the new topics, and do so far better
    assert forgetting < 0.2 * shift
    assert forgetting < 0.25 * remembering
