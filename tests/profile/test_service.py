"""The profile stage on a real database with the real model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.db.models import Embedding, Event, UserProfile
from app.embedding.embedder import text_hash
from app.embedding.repository import lookup
from app.event import repository as event_repository
from app.profile.math import ProfileSum, decode_sum, fold, profile_vector
from app.profile.service import COALESCE, apply_pending
from tests import factories
from tests.conftest import empty_tables
from tests.factories import drain

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def post(db, events: list[dict]) -> None:
    factories.post(db, events, now=NOW)


def profiles(db) -> dict[str, UserProfile]:
    with db.read() as session:
        return {p.user_id: p for p in session.scalars(select(UserProfile))}


def test_events_fold_into_profiles_and_are_marked_applied(db, embedder, make_settings):
    post(
        db,
        [
            {"event_id": "1", "user_id": "a", "type": "like", "text": "rocket launch"},
            {"event_id": "2", "user_id": "a", "type": "view", "text": "pasta recipe"},
            {"event_id": "3", "user_id": "b", "type": "view", "text": "rocket launch"},
        ],
    )
    assert drain(db, embedder, make_settings()) == 3
    found = profiles(db)
    assert {u: p.event_count for u, p in found.items()} == {"a": 2, "b": 1}
    vector = profile_vector(ProfileSum(decode_sum(found["b"].vector_sum, embedder.dim), 0.0))
    expected = embedder.encode(["rocket launch"])[0]
    assert np.allclose(vector, expected, atol=1e-6)
    with db.read() as session:
        assert session.scalar(select(func.count()).where(Event.applied_at.is_(None))) == 0


def test_each_distinct_text_is_encoded_once(db, embedder, make_settings):
    events = [{"user_id": f"u{i}", "type": "view", "text": f"text {i % 5}"} for i in range(40)]
    post(db, events)
    result = apply_pending(db, embedder, make_settings(batch_size=100))
    assert (result.applied, result.encoded) == (40, 5)
    post(db, events)
    assert apply_pending(db, embedder, make_settings(batch_size=100)).encoded == 0
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Embedding)) == 5


def test_events_wait_for_their_item_text(db, embedder, make_settings, client):
    post(db, [{"event_id": "1", "user_id": "a", "type": "like", "item_id": "m1"}])
    assert drain(db, embedder, make_settings()) == 0
    stats = client.get("/v1/stats").json()["events"]
    assert (stats["pending"], stats["waiting_for_item"]) == (1, 1)
    client.put("/v1/items/m1", json={"text": "Alien (1979) — Horror|Sci-Fi"})
    assert drain(db, embedder, make_settings()) == 1
    stats = client.get("/v1/stats").json()["events"]
    assert stats == {
        "received": 1,
        "applied": 1,
        "pending": 0,
        "waiting_for_item": 0,
        "quarantined": 0,
    }


def test_event_text_wins_over_item_text(db, embedder, make_settings, client):
    client.put("/v1/items/m1", json={"text": "pasta recipe"})
    post(
        db, [{"event_id": "1", "user_id": "a", "type": "search", "item_id": "m1", "text": "rocket"}]
    )
    drain(db, embedder, make_settings())
    p = profiles(db)["a"]
    vector = profile_vector(ProfileSum(decode_sum(p.vector_sum, embedder.dim), 0.0))
    assert np.allclose(vector, embedder.encode(["rocket"])[0], atol=1e-6)


TEXTS = ["rocket launch", "pasta recipe", "tennis final", "jazz concert", "oil painting"]
event_strategy = st.tuples(
    st.sampled_from(TEXTS),
    st.sampled_from(["view", "like", "dislike", "purchase"]),
    st.integers(0, 400),  # days before NOW
)


@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    events=st.lists(event_strategy, min_size=1, max_size=12),
    order=st.randoms(use_true_random=False),
    batch_size=st.integers(1, 5),
)
def test_profiles_are_order_free(db, embedder, make_settings, events, order, batch_size):
    """Any arrival order and batching gives the profile the formula gives for the set."""
    empty_tables(db)
    cfg = make_settings(batch_size=batch_size)
    rows = [
        {
            "event_id": f"e{i}",
            "user_id": "u",
            "type": kind,
            "text": text,
            "timestamp": (NOW - timedelta(days=days)).isoformat(),
        }
        for i, (text, kind, days) in enumerate(events)
    ]
    shuffled = rows[:]
    order.shuffle(shuffled)
    for start in range(0, len(shuffled), 3):  # arrivals in several requests, too
        post(db, shuffled[start : start + 3])
    drain(db, embedder, cfg)
    stored = profiles(db)["u"]
    # The vectors the service used: encodings differ in the last bits with batch composition.
    with db.read() as session:
        cached = lookup(session, embedder.model_id, [text_hash(t) for t in TEXTS])
    expected = fold(
        None,
        times=np.array([(NOW - timedelta(days=d)).timestamp() for _, _, d in events]),
        weights=np.array([cfg.event_weights[k] for _, k, _ in events]),
        vectors=np.stack([cached[text_hash(t)] for t, _, _ in events]).astype(np.float64),
        half_life_seconds=cfg.profile_half_life_seconds,
    )
    assert stored.event_count == len(events)
    assert stored.ref_time == expected.ref_time
    assert np.allclose(
        decode_sum(stored.vector_sum, embedder.dim), expected.vector_sum, rtol=1e-9, atol=1e-12
    )


def test_counts_and_last_event_time_add_up_whatever_the_arrival_order(db, embedder, make_settings):
    """The set-based write adds counts and keeps the newest event time in SQL: a later batch
    holding an older event leaves last_event_at alone; a new profile takes its own newest."""
    day = timedelta(days=1)
    post(
        db,
        [
            {
                "event_id": "1",
                "user_id": "a",
                "type": "view",
                "text": "t",
                "timestamp": NOW.isoformat(),
            }
        ],
    )
    drain(db, embedder, make_settings())
    older = (NOW - 3 * day).isoformat()
    post(
        db,
        [
            {"event_id": "2", "user_id": "a", "type": "view", "text": "t", "timestamp": older},
            {"event_id": "3", "user_id": "b", "type": "view", "text": "t", "timestamp": older},
            {
                "event_id": "4",
                "user_id": "b",
                "type": "like",
                "text": "u",
                "timestamp": (NOW - 5 * day).isoformat(),
            },
        ],
    )
    drain(db, embedder, make_settings())
    found = profiles(db)
    assert (found["a"].event_count, found["a"].last_event_at) == (2, NOW)
    assert (found["b"].event_count, found["b"].last_event_at) == (2, NOW - 3 * day)
    assert found["a"].version == 2 and found["b"].version == 1


def test_a_backlog_is_folded_with_one_profile_write_per_user(db, embedder, make_settings):
    """Ten users' events interleaved, three each: the step takes the oldest ten (one per user)
    and, as more wait, the same users' other events, so each profile is written once."""
    post(db, [{"user_id": f"u{i % 10}", "type": "view", "text": f"t{i}"} for i in range(30)])
    step = apply_pending(db, embedder, make_settings(batch_size=10))
    assert step.applied == 30
    found = profiles(db)
    assert {p.event_count for p in found.values()} == {3}
    assert {p.version for p in found.values()} == {1}  # one fold each, not three


def test_a_step_takes_at_most_coalesce_batches(db, embedder, make_settings):
    post(db, [{"user_id": "busy", "type": "view", "text": f"t{i % 7}"} for i in range(100)])
    step = apply_pending(db, embedder, make_settings(batch_size=5))
    assert step.applied == 5 * COALESCE
    assert drain(db, embedder, make_settings(batch_size=5)) == 100 - 5 * COALESCE
    assert profiles(db)["busy"].event_count == 100


def test_a_worker_whose_batch_another_claimed_takes_the_next_one(
    backend, db, embedder, make_settings
):
    """Peeks are not locks: two workers peek the same oldest events and one claims them. The
    other does not wait for that commit: its next step peeks after the batch it lost."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its workers never fold concurrently")
    post(db, [{"user_id": f"u{i}", "type": "view", "text": f"t{i}"} for i in range(20)])
    settings = make_settings(batch_size=10)
    with db.read() as session:
        oldest = [e.id for e in event_repository.peek_pending(session, 10)]
    with db.write() as other:  # another worker, between its claim and its commit
        assert len(event_repository.claim_ids(other, oldest)) == 10
        lost = apply_pending(db, embedder, settings)
        assert (lost.applied, lost.taken_up_to) == (0, max(oldest))
        won = apply_pending(db, embedder, settings, after=lost.taken_up_to)
        assert (won.applied, won.taken_up_to) == (10, None)
    assert set(profiles(db)) == {f"u{i}" for i in range(10, 20)}
