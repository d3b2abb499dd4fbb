"""A proposed generation: adopted only when better on users it did not fit, ids kept."""

from __future__ import annotations

import numpy as np

from app.clustering.generation import mean_inertia, propose, refit_on
from app.clustering.model import OnlineKMeans
from app.clustering.refit import MIN_GAIN
from tests.clustering.synthetic import blobs, topic_centers
from tests.clustering.test_k_selection import nested_topics


def data(seed: int = 0, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return blobs(rng, topic_centers(rng, 6, 32), n, spread=0.3).astype(np.float64)


def proposal(X: np.ndarray, **kwargs: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "trigger": "growth",
        "current": None,
        "current_ids": [],
        "next_id": 0,
        "clusters": 6,
        "seed": 0,
        "half_life": None,
        "batch_size": 1024,
    }
    return propose(X, **(args | kwargs))  # type: ignore[arg-type]


def test_the_first_model_is_adopted_with_ids_from_zero() -> None:
    first = proposal(data())
    assert first.adopted and first.matching.ids == [0, 1, 2, 3, 4, 5]
    assert first.model.n_clusters == 6 and first.report is not None


def test_a_worse_model_is_replaced() -> None:
    X = data()
    stale = OnlineKMeans(n_clusters=6, n_features=32, half_life=None, seed=0)
    stale.partial_fit(X[:6])  # centres on six users, never updated
    found = proposal(X, current=stale, current_ids=list(range(6)), next_id=6)
    assert found.candidate_inertia is not None and found.current_inertia is not None
    assert found.candidate_inertia < found.current_inertia * (1 - MIN_GAIN)
    assert found.adopted and "better" in found.reason


def test_a_model_as_good_as_the_candidate_is_kept() -> None:
    X = data()
    first = proposal(X)
    again = proposal(X, current=first.model, current_ids=first.matching.ids, next_id=6, seed=1)
    assert not again.adopted and "not better" in again.reason
    assert again.held_out_size == 120
    # it was judged on users the candidate did not fit: those are scored, not fitted
    assert mean_inertia(again.model.centers, X) > 0


def test_a_refit_of_unchanged_data_moves_no_user_to_another_id() -> None:
    X = data(2)
    first = proposal(X)
    ids = [40, 41, 42, 43, 44, 45]  # ids after earlier generations, not row numbers
    again = proposal(X, current=first.model, current_ids=ids, next_id=46, held_out=False, seed=5)
    assert again.adopted
    before = np.asarray(ids)[first.model.predict(X)]
    after = np.asarray(again.matching.ids)[again.model.predict(X)]
    assert int((before != after).sum()) == 0
    assert sorted(again.matching.ids) == ids and again.matching.born == []
    assert again.transitions is not None and again.transitions.moved_share == 0.0


def test_auto_chooses_k_from_the_report() -> None:
    X = nested_topics(np.random.default_rng(0), 900).astype(np.float64)
    found = proposal(X, clusters=None)
    assert found.report is not None
    assert found.k == found.report.best == 6
    meta = found.as_meta()
    assert meta["k_report"]["best"] == 6 and meta["cluster_ids"] == list(range(6))


def test_a_centre_only_held_out_users_support_is_not_judged() -> None:
    X = data(4, 120)
    model = OnlineKMeans(n_clusters=3, n_features=32, half_life=None, seed=0)
    model.partial_fit(X[:3])
    far = -X[0]  # a centre on a point none of the fitted rows is nearest to
    model.set_centers(np.stack([X[:60].mean(axis=0), X[60:].mean(axis=0), far]))
    centres = refit_on(model, X)
    assert len(centres) == 2  # the memberless centre is dropped, not kept in place
    assert np.allclose(centres.mean(axis=0), X.mean(axis=0), atol=0.5)
