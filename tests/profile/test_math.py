"""Property tests for the order-free decayed profile sum."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clustering.vectors import MIN_NORM
from app.profile.math import (
    ProfileSum,
    decode_sum,
    encode_sum,
    fold,
    fold_many,
    profile_vector,
    rebase,
)

DIM = 8
DAY = 86_400.0
T0 = 1_700_000_000.0  # a realistic epoch: differences of such floats are exact (Sterbenz)
EPS = np.finfo(np.float64).eps


def _tolerance(times: np.ndarray, weights: np.ndarray, vectors: np.ndarray, h: float) -> float:
    """Absolute tolerance for one component of the sum, justified by float64 error analysis.

    Each term w*2^x*e is off by about (|x|*ln2 + 3) ulps (x = -(T-t)/H is rounded before exp2,
    and a rebase splits exp2(a+b) into exp2(a)*exp2(b)); summing n terms in any order adds at
    most n ulps of the total absolute mass. 16x that bound leaves headroom for BLAS blocking yet
    is still ~1e-10 of the mass, far below what a lost, duplicated or mis-decayed term changes.
    """
    x = (times.max() - times) / h
    mass = float(np.sum(np.abs(weights) * np.exp2(-x) * np.abs(vectors).max(axis=1)))
    return 16 * EPS * (len(times) + float(x.max()) + 3) * mass + 1e-300


def _reference(times: np.ndarray, weights: np.ndarray, vectors: np.ndarray, h: float) -> np.ndarray:
    """The defining formula, summed exactly-rounded per component with math.fsum."""
    ref = times.max()
    coeffs = [w * 2.0 ** (-(ref - t) / h) for t, w in zip(times, weights, strict=True)]
    return np.array(
        [math.fsum(c * v[j] for c, v in zip(coeffs, vectors, strict=True)) for j in range(DIM)]
    )


def _fold_batches(batches: list[np.ndarray], times, weights, vectors, h: float) -> ProfileSum:
    p: ProfileSum | None = None
    for idx in batches:
        p = fold(
            p, times=times[idx], weights=weights[idx], vectors=vectors[idx], half_life_seconds=h
        )
    assert p is not None
    return p


@st.composite
def event_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = draw(st.integers(1, 40))
    h = draw(st.floats(3600.0, 90 * DAY))
    offsets = draw(st.lists(st.floats(0.0, 180 * DAY), min_size=n, max_size=n))
    weights = draw(
        st.lists(
            st.one_of(st.floats(-5.0, 5.0), st.sampled_from([-1.0, 0.0, 1.0])),
            min_size=n,
            max_size=n,
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vectors = rng.standard_normal((n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return T0 + np.array(offsets), np.array(weights), vectors, h


@st.composite
def batchings(draw: st.DrawFn, n: int, times: np.ndarray) -> list[np.ndarray]:
    """A random partition: either time-ordered consecutive runs or arbitrary shuffled batches."""
    if draw(st.booleans()):
        order = np.argsort(times, kind="stable")
    else:
        order = np.array(draw(st.permutations(list(range(n)))), dtype=np.intp)
    cuts = sorted(draw(st.sets(st.integers(1, max(n - 1, 1)), max_size=n)) if n > 1 else [])
    return [b for b in np.split(order, cuts) if b.size]


@settings(deadline=None, max_examples=200)
@given(data=st.data(), events=event_sets())
def test_any_order_and_batching_gives_the_same_profile(data: st.DataObject, events) -> None:
    times, weights, vectors, h = events
    n = len(times)
    batches = data.draw(batchings(n, times))
    one_shot = fold(None, times=times, weights=weights, vectors=vectors, half_life_seconds=h)
    batched = _fold_batches(batches, times, weights, vectors, h)
    tol = _tolerance(times, weights, vectors, h)

    assert batched.ref_time == one_shot.ref_time == times.max()
    np.testing.assert_allclose(batched.vector_sum, one_shot.vector_sum, rtol=0, atol=tol)
    np.testing.assert_allclose(
        one_shot.vector_sum, _reference(times, weights, vectors, h), rtol=0, atol=tol
    )

    # The unit vector amplifies absolute error by 1/||S||; compare it only where that is tame.
    norm = float(np.linalg.norm(one_shot.vector_sum))
    if norm > 1e6 * max(tol, MIN_NORM):
        a, b = profile_vector(batched), profile_vector(one_shot)
        assert a is not None and b is not None
        # float32 output: one float32 ulp (<=6e-8 below 1) on top of the float64 error.
        np.testing.assert_allclose(a, b, rtol=0, atol=1.2e-7 + 4 * tol / norm)


@settings(deadline=None)
@given(events=event_sets(), later=st.floats(0.0, 365 * DAY))
def test_rebased_sums_agree_at_a_common_ref_time(events, later: float) -> None:
    times, weights, vectors, h = events
    p = fold(None, times=times, weights=weights, vectors=vectors, half_life_seconds=h)
    target = times.max() + later
    moved = rebase(p, target, half_life_seconds=h)
    direct = fold(
        None,
        times=np.append(times, target),
        weights=np.append(weights, 0.0),
        vectors=np.vstack([vectors, vectors[:1]]),
        half_life_seconds=h,
    )
    assert moved.ref_time == direct.ref_time == target
    tol = _tolerance(
        np.append(times, target), np.append(weights, 0.0), np.vstack([vectors, vectors[:1]]), h
    )
    np.testing.assert_allclose(moved.vector_sum, direct.vector_sum, rtol=0, atol=2 * tol)


def test_one_half_life_halves_a_contribution() -> None:
    h = 7 * DAY
    e1, e2 = np.eye(DIM)[0], np.eye(DIM)[1]
    p = fold(
        None, times=np.array([T0]), weights=np.array([1.0]), vectors=e1[None], half_life_seconds=h
    )
    p = fold(
        p, times=np.array([T0 + h]), weights=np.array([1.0]), vectors=e2[None], half_life_seconds=h
    )
    assert p.ref_time == T0 + h
    assert p.vector_sum[0] == pytest.approx(0.5, rel=1e-15)
    assert p.vector_sum[1] == 1.0
    three = rebase(p, T0 + 4 * h, half_life_seconds=h)
    assert three.vector_sum[0] == pytest.approx(0.5 / 8, rel=1e-14)
    assert three.vector_sum[1] == pytest.approx(1 / 8, rel=1e-14)


def test_older_event_keeps_ref_and_newer_event_rebases() -> None:
    h = DAY
    e = np.eye(DIM)
    p = fold(
        None,
        times=np.array([T0 + 2 * h]),
        weights=np.array([2.0]),
        vectors=e[:1],
        half_life_seconds=h,
    )
    older = fold(
        p, times=np.array([T0]), weights=np.array([1.0]), vectors=e[1:2], half_life_seconds=h
    )
    assert older.ref_time == T0 + 2 * h
    np.testing.assert_allclose(older.vector_sum[:2], [2.0, 0.25], rtol=1e-15)
    newer = fold(
        older,
        times=np.array([T0 + 3 * h]),
        weights=np.array([-1.0]),
        vectors=e[2:3],
        half_life_seconds=h,
    )
    assert newer.ref_time == T0 + 3 * h
    np.testing.assert_allclose(newer.vector_sum[:3], [1.0, 0.125, -1.0], rtol=1e-15)


def test_cancelling_events_give_no_profile_vector() -> None:
    h = DAY
    v = np.random.default_rng(1).standard_normal((1, DIM))
    v /= np.linalg.norm(v)
    same_time = fold(
        None,
        times=np.array([T0, T0]),
        weights=np.array([1.0, -1.0]),
        vectors=np.vstack([v, v]),
        half_life_seconds=h,
    )
    assert profile_vector(same_time) is None
    # A like, then half a dislike one half-life later: 1 * 2^-1 - 0.5 = 0.
    p = fold(None, times=np.array([T0]), weights=np.array([1.0]), vectors=v, half_life_seconds=h)
    p = fold(p, times=np.array([T0 + h]), weights=np.array([-0.5]), vectors=v, half_life_seconds=h)
    assert profile_vector(p) is None
    liked = fold(
        None, times=np.array([T0]), weights=np.array([1.0]), vectors=v, half_life_seconds=h
    )
    out = profile_vector(liked)
    assert out is not None and out.dtype == np.float32
    np.testing.assert_allclose(out, v[0], rtol=0, atol=1e-7)


def test_disliked_only_profile_points_away() -> None:
    v = np.eye(DIM)[:1]
    p = fold(None, times=np.array([T0]), weights=np.array([-2.0]), vectors=v, half_life_seconds=DAY)
    out = profile_vector(p)
    assert out is not None
    np.testing.assert_array_equal(out, -v[0].astype(np.float32))


def test_fold_rejects_bad_input() -> None:
    v = np.eye(DIM)[:1]
    ok = {"times": np.array([T0]), "weights": np.array([1.0]), "vectors": v}
    with pytest.raises(ValueError):
        fold(None, **ok, half_life_seconds=0.0)
    with pytest.raises(ValueError):
        fold(
            None,
            times=np.array([T0, T0]),
            weights=np.array([1.0]),
            vectors=v,
            half_life_seconds=DAY,
        )
    with pytest.raises(ValueError):
        fold(
            None,
            times=np.array([np.nan]),
            weights=np.array([1.0]),
            vectors=v,
            half_life_seconds=DAY,
        )
    p = fold(None, **ok, half_life_seconds=DAY)
    with pytest.raises(ValueError):
        fold(
            p,
            times=np.array([T0]),
            weights=np.array([1.0]),
            vectors=np.eye(DIM + 1)[:1],
            half_life_seconds=DAY,
        )
    empty = {"times": np.empty(0), "weights": np.empty(0), "vectors": np.empty((0, DIM))}
    assert fold(p, **empty, half_life_seconds=DAY) is p
    with pytest.raises(ValueError):
        fold(None, **empty, half_life_seconds=DAY)


def test_profile_sum_is_immutable() -> None:
    source = np.ones(DIM)
    p = ProfileSum(vector_sum=source, ref_time=T0)
    source[0] = 5.0
    assert p.vector_sum[0] == 1.0
    with pytest.raises(ValueError):
        p.vector_sum[0] = 2.0


@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=400))
def test_encode_decode_round_trip(values: list[float]) -> None:
    p = ProfileSum(vector_sum=np.array(values), ref_time=T0)
    raw = encode_sum(p)
    assert len(raw) == 8 * len(values)
    np.testing.assert_array_equal(decode_sum(raw, len(values)), p.vector_sum)


def test_encoding_is_little_endian_float64() -> None:
    raw = encode_sum(ProfileSum(vector_sum=np.array([1.0, -2.5]), ref_time=T0))
    assert raw == struct.pack("<2d", 1.0, -2.5)


def test_decode_rejects_bad_bytes() -> None:
    raw = encode_sum(ProfileSum(vector_sum=np.ones(DIM), ref_time=T0))
    with pytest.raises(ValueError, match="bytes"):
        decode_sum(raw, DIM + 1)
    with pytest.raises(ValueError, match="bytes"):
        decode_sum(raw[:-1], DIM)
    with pytest.raises(ValueError, match="bytes"):
        decode_sum(b"", 0)
    with pytest.raises(ValueError, match="non-finite"):
        decode_sum(struct.pack("<2d", 1.0, float("nan")), 2)


def test_real_embeddings_fold_into_a_meaningful_profile() -> None:
    from app.embedding import DEFAULT_MODEL, load_embedder

    embedder = load_embedder(DEFAULT_MODEL)
    history = ["trail running shoes", "marathon training plan", "chocolate cake recipe"]
    vectors = embedder.encode(history)
    p = fold(
        None,
        times=np.array([T0, T0 + DAY, T0 + 2 * DAY]),
        weights=np.array([1.0, 1.0, -1.0]),
        vectors=vectors,
        half_life_seconds=7 * DAY,
    )
    profile = profile_vector(p)
    assert profile is not None and profile.shape == (embedder.dim,)
    running, baking = embedder.encode(["lightweight running gear", "baking desserts at home"])
    assert profile @ running > profile @ baking + 0.2


@settings(deadline=None, max_examples=100)
@given(data=st.data(), events=event_sets(), n_users=st.integers(1, 6))
def test_folding_many_users_at_once_is_folding_each(data: st.DataObject, events, n_users) -> None:
    """`fold_many` (the profile stage's one numpy pass per batch) gives every user the sum that
    `fold` gives them, for new users and for users with a stored sum alike."""
    times, weights, vectors, h = events
    n = len(times)
    users = np.array(data.draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)))
    present = np.unique(users)
    users = np.searchsorted(present, users)  # every row gets at least one event
    rng = np.random.default_rng(len(times))
    known = rng.random(len(present)) < 0.5
    current = rng.standard_normal((len(present), DIM))
    refs = T0 + rng.random(len(present)) * 200 * DAY
    out = fold_many(
        current,
        refs,
        known,
        users=users,
        times=times,
        weights=weights,
        vectors=vectors,
        half_life_seconds=h,
    )
    for i in range(len(present)):
        mine = users == i
        start = ProfileSum(current[i], refs[i]) if known[i] else None
        one = fold(
            start,
            times=times[mine],
            weights=weights[mine],
            vectors=vectors[mine],
            half_life_seconds=h,
        )
        assert out.ref_times[i] == one.ref_time
        mass = np.abs(one.vector_sum).max() + np.abs(current[i]).max() + 1.0
        tol = _tolerance(times[mine], weights[mine], vectors[mine], h) + 64 * EPS * mass
        np.testing.assert_allclose(out.sums[i], one.vector_sum, rtol=0, atol=tol)


def test_fold_many_refuses_what_fold_refuses() -> None:
    v = np.eye(DIM)[:2]
    with pytest.raises(ValueError, match="overflows"):
        fold_many(
            np.zeros((1, DIM)),
            np.zeros(1),
            np.zeros(1, dtype=bool),
            users=np.array([0, 0]),
            times=np.array([T0, T0]),
            weights=np.array([1.7e308, 1.7e308]),
            vectors=np.vstack([v[0], v[0]]),
            half_life_seconds=DAY,
        )
    with pytest.raises(ValueError, match="at least one event"):
        fold_many(
            np.zeros((2, DIM)),
            np.zeros(2),
            np.zeros(2, dtype=bool),
            users=np.array([0]),
            times=np.array([T0]),
            weights=np.array([1.0]),
            vectors=v[:1],
            half_life_seconds=DAY,
        )


@pytest.mark.parametrize(("stored", "spurious"), [(np.float64, 0), (np.float32, 100)])
def test_sums_are_stored_as_float64_because_float32_breaks_cancellation(stored, spurious) -> None:
    """Why the stored sum is float64 (3 KB at 384-d, not 1.5 KB): a like and a view, then the
    dislikes that cancel them exactly, must leave no direction. Rounded to float32 between
    folds, as a float32 column would, the residue (~1e-8) exceeds MIN_NORM in every trial and
    the user gets a random "interest"; in float64 it is ~1e-17 and the profile is empty."""
    h = DAY
    rng = np.random.default_rng(1)
    steps = [(T0, 1.0, 0), (T0 + h / 3, 1.0, 1), (T0 + h / 3, -(2 ** (-1 / 3)), 0)]
    steps.append((T0 + h / 3, -1.0, 1))
    found = 0
    for _ in range(100):
        v = rng.standard_normal((2, 384)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        p: ProfileSum | None = None
        for t, w, i in steps:
            p = fold(
                p,
                times=np.array([t]),
                weights=np.array([w]),
                vectors=v[i : i + 1],
                half_life_seconds=h,
            )
            p = ProfileSum(p.vector_sum.astype(stored).astype(np.float64), p.ref_time)
        assert p is not None
        found += profile_vector(p) is not None
    assert found == spurious
