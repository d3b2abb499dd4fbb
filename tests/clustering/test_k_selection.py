"""The k report: cross-validated inertia chooses k where the silhouette would say 2."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from app.clustering.k_selection import CRITERION, candidates_for, score_k
from tests.clustering.synthetic import blobs, normalise, topic_centers


def nested_topics(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two far-apart themes of three topics each: the silhouette's favourite is the two themes."""
    themes = topic_centers(rng, 2, 64)
    topics = normalise(np.repeat(themes, 3, axis=0) + 0.45 * topic_centers(rng, 6, 64))
    return blobs(rng, topics, n, spread=0.25)


def test_six_topics_under_two_themes_give_six_where_the_silhouette_gives_two() -> None:
    X = nested_topics(np.random.default_rng(0), 900)
    silhouette = {
        k: silhouette_score(X, KMeans(k, n_init=3, random_state=0).fit_predict(X)) for k in (2, 6)
    }
    assert silhouette[2] > silhouette[6]  # the premise: the silhouette picks the themes
    report = score_k(X, seed=0, candidates=(2, 3, 4, 6, 8, 12))
    assert report.best == 6
    assert report.criterion == CRITERION
    assert [c.k for c in report.candidates] == [2, 3, 4, 6, 8, 12]
    assert "k=6" in report.reason


def test_a_current_k_within_one_standard_error_is_kept() -> None:
    X = nested_topics(np.random.default_rng(0), 900)
    report = score_k(X, seed=0, candidates=(2, 6, 8, 12), current=8)
    six, eight = report.candidate(6), report.candidate(8)
    assert eight.held_out_inertia <= six.held_out_inertia * 1.01  # the premise: a flat stretch
    assert report.best == 8 and "current" in report.reason
    # a current k far outside the band is not kept
    assert score_k(X, seed=0, candidates=(2, 6, 8), current=2).best == 6


def test_the_report_holds_each_candidates_centres() -> None:
    X = nested_topics(np.random.default_rng(4), 300)
    report = score_k(X, seed=0, candidates=(2, 6))
    assert report.candidate(6).centers.shape == (6, 64)
    assert "centers" not in str(report.as_dict())


def test_only_candidates_the_population_supports_are_scored() -> None:
    # 10 members per cluster: 100 users support k <= 10
    assert candidates_for(100) == [2, 3, 4, 6, 8]
    X = nested_topics(np.random.default_rng(2), 100)
    assert [c.k for c in score_k(X, seed=0).candidates] == [2, 3, 4, 6, 8]


def test_too_few_users_for_any_candidate_is_refused() -> None:
    X = nested_topics(np.random.default_rng(3), 19)
    with pytest.raises(ValueError, match="support none"):
        score_k(X, seed=0)
