"""The first-fit rule, the refit trigger and the adoption rule."""

from __future__ import annotations

import numpy as np
import pytest

from app.clustering.refit import (
    GROWTH,
    MEMBERS_PER_CLUSTER,
    MIN_GAIN,
    TURNOVER,
    RefitMark,
    better,
    first_fit_users,
    refit_trigger,
    split_held_out,
)


@pytest.mark.parametrize(("k", "users"), [(2, 20), (8, 80), (32, 320)])
def test_first_fit_waits_for_ten_members_per_cluster(k: int, users: int) -> None:
    assert MEMBERS_PER_CLUSTER == 10
    assert first_fit_users(k) == users


def test_a_small_site_gets_a_model() -> None:
    # the small site: 300 users and k=8 waited forever for 3000
    assert first_fit_users(8) <= 300


def test_first_fit_refuses_no_clusters() -> None:
    with pytest.raises(ValueError):
        first_fit_users(0)


def test_growth_triggers_once_the_population_grew_by_a_quarter() -> None:
    last = RefitMark(users=400, trained_rows=400, at=0.0)
    grown = int(400 * GROWTH)

    def trigger(users: int) -> str | None:
        return refit_trigger(last=last, users=users, trained_rows=400, now=10, min_interval=0)

    assert trigger(grown - 1) is None
    assert trigger(grown) == "growth"


def test_turnover_triggers_after_an_update_for_a_quarter_of_the_users() -> None:
    assert TURNOVER == 0.25
    last = RefitMark(users=400, trained_rows=1000, at=0.0)
    assert refit_trigger(last=last, users=400, trained_rows=1099, now=1, min_interval=0) is None
    assert (
        refit_trigger(last=last, users=400, trained_rows=1100, now=1, min_interval=0) == "turnover"
    )


def test_no_try_within_the_interval() -> None:
    last = RefitMark(users=100, trained_rows=0, at=50.0)
    assert refit_trigger(last=last, users=1000, trained_rows=5000, now=59, min_interval=10) is None
    assert refit_trigger(last=last, users=1000, trained_rows=5000, now=60, min_interval=10)


def test_held_out_split_is_disjoint_seeded_and_a_fifth() -> None:
    fit, held = split_held_out(100, seed=3)
    assert len(held) == 20 and len(fit) == 80
    assert not set(fit) & set(held) and set(fit) | set(held) == set(range(100))
    again_fit, again_held = split_held_out(100, seed=3)
    assert np.array_equal(fit, again_fit) and np.array_equal(held, again_held)


def test_a_candidate_must_be_measurably_better() -> None:
    assert better(current=100.0, candidate=100.0 * (1 - MIN_GAIN) - 1e-9)
    assert not better(current=100.0, candidate=100.0 * (1 - MIN_GAIN) + 1e-9)
    assert not better(current=100.0, candidate=101.0)
    assert not better(current=float("nan"), candidate=1.0)
