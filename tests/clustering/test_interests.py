"""Several interests per user: order-free, most important first, dislikes form none."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clustering.interests import Ranking, blend, decayed_weights, find_interests

DIM = 8


@st.composite
def event_sets(draw: st.DrawFn) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Events on a few texts (repeats included), with times and weights of either sign."""
    texts = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    vectors = np.random.default_rng(seed).normal(size=(texts, DIM))
    n = draw(st.integers(1, 30))
    which = draw(st.lists(st.integers(0, texts - 1), min_size=n, max_size=n))
    times = draw(st.lists(st.floats(0, 1e8), min_size=n, max_size=n))
    weights = draw(st.lists(st.sampled_from([1.0, 1.5, 3.0, 4.0, -2.0]), min_size=n, max_size=n))
    keys = [f"text-{i}".encode() for i in which]
    coefficients = decayed_weights(np.array(times), np.array(weights), half_life_seconds=86_400.0)
    return keys, vectors[which], coefficients


def summary(interests) -> list[tuple[list[bytes], float, list[float]]]:
    return [(i.keys, round(i.importance, 9), list(np.round(i.vector, 9))) for i in interests]


@settings(deadline=None, max_examples=200)
@given(data=st.data(), events=event_sets(), m=st.integers(1, 4))
def test_the_same_events_in_any_order_give_the_same_interests(data, events, m) -> None:
    keys, vectors, coefficients = events
    order = data.draw(st.permutations(range(len(keys))))
    first = find_interests(keys, vectors, coefficients, max_interests=m)
    shuffled = find_interests(
        [keys[i] for i in order], vectors[order], coefficients[order], max_interests=m
    )
    assert summary(shuffled) == summary(first)
    assert len(first) <= m
    assert [i.importance for i in first] == sorted((i.importance for i in first), reverse=True)
    assert all(i.importance > 0 for i in first)


def test_two_tastes_are_two_interests_weighted_by_decayed_importance() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=DIM), rng.normal(size=DIM)
    vectors = np.stack([a + 0.05 * rng.normal(size=DIM) for _ in range(3)] + [b] * 2)
    keys = [b"a1", b"a2", b"a3", b"b1", b"b2"]
    # b's events are recent, a's a year old: b matters more although a has more events
    times = np.array([0.0, 0.0, 0.0, 365 * 86_400.0, 365 * 86_400.0])
    coefficients = decayed_weights(times, np.ones(5), half_life_seconds=30 * 86_400.0)
    found = find_interests(keys, vectors, coefficients, max_interests=3)
    assert [sorted(i.keys) for i in found] == [[b"b1", b"b2"], [b"a1", b"a2", b"a3"]]
    assert found[0].importance == 2.0 and found[1].importance < 0.01


def test_disliked_texts_form_no_interest() -> None:
    vectors = np.eye(DIM)[:2]
    found = find_interests([b"x", b"y"], vectors, np.array([3.0, -2.0]), max_interests=3)
    assert [i.keys for i in found] == [[b"x"]]
    assert find_interests([b"y"], vectors[1:], np.array([-2.0]), max_interests=3) == []


def ranking(*items: tuple[str, float, np.ndarray | None]) -> Ranking:
    vectors = np.stack([np.zeros(2) if v is None else v for _, _, v in items]).astype(np.float32)
    return Ranking([i for i, _, _ in items], np.array([s for _, s, _ in items]), vectors)


def test_blend_weights_clusters_by_share_and_closeness_and_skips_seen_items() -> None:
    x, y = np.eye(2)
    rankings = {
        1: ranking(("a", 10.0, x), ("b", 5.0, x), ("s", 9.0, x)),
        2: ranking(("c", 4.0, None), ("b", 4.0, None)),
    }
    picked = blend(rankings, [(1, 0.75, x), (2, 0.25, None)], seen={"s"}, affinity=0.0)
    assert [item for item, _, _ in picked] == ["a", "b", "c"]
    assert picked[1] == ("b", 0.75 * 0.5 + 0.25, 0)  # b: from both, most from interest 0
    # closeness to the interest reorders a cluster's items: y is away from x
    close = {1: ranking(("far", 10.0, x), ("near", 5.0, y))}
    assert [i for i, _, _ in blend(close, [(1, 1.0, y)], seen=set(), affinity=0.0)] == [
        "far",
        "near",
    ]
    assert [i for i, _, _ in blend(close, [(1, 1.0, y)], seen=set(), affinity=4.5)] == [
        "near",
        "far",
    ]
    assert blend(rankings, [], seen=set()) == []
