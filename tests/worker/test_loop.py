"""Worker processes: SIGKILL at any moment loses and doubles nothing; workers run side by side."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update

from app.db.models import Event, UserProfile
from app.model import repository as model_repository
from tests.factories import drain, post, topic_events

WORKER_SETTINGS = {
    "clusters": 3,
    "min_users_first_fit": 30,
    "batch_size": 40,
    "poll_interval_seconds": 0.05,
    "evaluate_interval_seconds": 1,
    "log_level": "INFO",
}


def unapplied(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).where(Event.applied_at.is_(None))) or 0


def applied(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).where(Event.applied_at.is_not(None))) or 0


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def event_counts(db) -> dict[str, int]:
    with db.read() as session:
        return dict(
            session.execute(select(UserProfile.user_id, UserProfile.event_count)).tuples().all()
        )


def model_version(db) -> int:
    with db.read() as session:
        return model_repository.latest_version(session) or 0


def test_sigkilled_worker_loses_and_doubles_nothing(db, spawn_worker):
    events = topic_events(users_per_topic=40, events_per_user=12)
    random.Random(7).shuffle(events)
    expected = Counter(e["user_id"] for e in events)
    chunks = [events[i : i + 120] for i in range(0, len(events), 120)]
    rng = random.Random(11)
    versions_seen = [0]

    worker = spawn_worker(**WORKER_SETTINGS)
    for index, chunk in enumerate(chunks):
        post(db, chunk)
        versions_seen.append(model_version(db))
        if index % 4 == 3:  # SIGKILL at an arbitrary moment, mid-stream, then restart
            wait_until(lambda: applied(db) > 0, 60, "the worker to start applying")
            time.sleep(rng.uniform(0.0, 0.6))
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            versions_seen.append(model_version(db))
            worker = spawn_worker(**WORKER_SETTINGS)
    wait_until(lambda: unapplied(db) == 0, 120, "every event to be applied")
    wait_until(lambda: model_version(db) > versions_seen[-1], 60, "training after the last restart")
    versions_seen.append(model_version(db))

    assert event_counts(db) == dict(expected)  # each accepted event applied exactly once
    assert versions_seen == sorted(versions_seen)  # the model version only grew
    assert versions_seen[-1] > 0


@pytest.mark.postgres_only
def test_three_workers_give_the_same_profiles_as_one(
    db, backend, spawn_worker, embedder, make_settings
):
    if backend != "postgresql":
        pytest.skip("concurrent profile workers need PostgreSQL row locks")
    events = topic_events(users_per_topic=30, events_per_user=10)
    random.Random(3).shuffle(events)
    workers = [spawn_worker(name=f"w{i}", **WORKER_SETTINGS) for i in range(3)]
    for start in range(0, len(events), 100):
        post(db, events[start : start + 100])
    wait_until(lambda: unapplied(db) == 0, 120, "every event to be applied")
    logs = [Path(w.log_path).read_text() for w in workers]
    assert sum("now the trainer" in log for log in logs) == 1  # one leader, two stand by
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    with db.read() as session:
        together = {
            p.user_id: (p.event_count, p.vector_sum, p.ref_time)
            for p in session.scalars(select(UserProfile))
        }

    with db.write() as session:  # replay the same events through one worker
        session.execute(update(Event).values(applied_at=None))
        session.execute(UserProfile.__table__.delete())
    drain(db, embedder, make_settings(batch_size=40))
    with db.read() as session:
        alone = {
            p.user_id: (p.event_count, p.vector_sum, p.ref_time)
            for p in session.scalars(select(UserProfile))
        }

    assert together.keys() == alone.keys() and len(alone) == 90
    for user, (count, blob, ref_time) in alone.items():
        assert together[user][0] == count and together[user][2] == ref_time
        a = np.frombuffer(blob, dtype="<f8")
        b = np.frombuffer(together[user][1], dtype="<f8")
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), user
