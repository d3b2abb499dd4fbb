"""Isolation (issue 9): one user's events that cannot be folded are bisected out of the batch
and quarantined with the reason; everyone else's events flow on; the database's own trouble is
retried, never quarantined."""

from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.db.base import utcnow
from app.db.models import Event, QuarantinedEvent, UserProfile
from app.db.session import Database
from app.profile.service import apply_pending, is_poison
from app.quarantine import service as quarantine_service
from tests.factories import drain, post, topic_events

POISON_WEIGHT = 1.7e308  # accepted before weights were bounded: stored events can carry it


def insert_poison(db: Database, user_id: str, n: int) -> None:
    """Events as an older version stored them: each finite, together they overflow a sum."""
    now = utcnow()
    with db.write() as session:
        session.add_all(
            Event(
                event_id=f"poison-{user_id}-{i}",
                user_id=user_id,
                type="like",
                text="an overflowing like",
                weight=POISON_WEIGHT,
                occurred_at=now,
                received_at=now,
            )
            for i in range(n)
        )


def counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        applied = select(func.count()).where(Event.applied_at.is_not(None))
        return {
            "applied": session.scalar(applied) or 0,
            "quarantined": session.scalar(select(func.count()).select_from(QuarantinedEvent)) or 0,
            "profiles": session.scalar(select(func.count()).select_from(UserProfile)) or 0,
        }


def test_a_poisoned_batch_is_bisected_and_everyone_else_flows_on(db, embedder, make_settings):
    settings = make_settings(batch_size=64)
    good = topic_events(users_per_topic=3, events_per_user=4)  # 36 events, 9 users
    post(db, good[:18])
    insert_poison(db, "mallory", 20)  # in the middle of the queue, in one batch with the rest
    post(db, good[18:])
    applied = drain(db, embedder, settings)  # used to raise, on this batch, forever
    result = counts(db)
    assert result["quarantined"] >= 1
    assert applied + result["quarantined"] == 56  # every event: applied or quarantined
    assert result["profiles"] == 10  # mallory's first events folded, until the sum overflowed
    with db.read() as session:
        quarantined = session.scalars(select(QuarantinedEvent)).all()
    assert {q.user_id for q in quarantined} == {"mallory"}
    assert all("overflows the profile sum" in q.reason for q in quarantined), quarantined[0].reason


def test_a_retried_event_that_still_fails_is_quarantined_again(db, embedder, make_settings):
    settings = make_settings(batch_size=64)
    insert_poison(db, "mallory", 20)
    drain(db, embedder, settings)
    before = counts(db)
    assert before["quarantined"] >= 1  # the sum takes a few, then each further one overflows
    with db.write() as session:
        quarantine_service.retry(session, ids=None)
    assert counts(db)["quarantined"] == 0
    drain(db, embedder, settings)
    assert counts(db) == before


def test_the_database_refusing_writes_quarantines_nothing(db, embedder, make_settings, backend):
    post(db, topic_events(users_per_topic=1, events_per_user=3))
    settings = make_settings(batch_size=64)
    broken = Database(str(db.engine.url.render_as_string(hide_password=False)))

    @sa_event.listens_for(broken.engine, "connect")
    def _read_only(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        if backend == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
        cursor.close()
        if backend == "postgresql":
            dbapi_connection.commit()

    try:
        with pytest.raises(OperationalError if backend == "sqlite" else Exception):
            apply_pending(broken, embedder, settings)
    finally:
        broken.dispose()
    assert counts(db) == {"applied": 0, "quarantined": 0, "profiles": 0}
    assert drain(db, embedder, settings) == 9  # and it all folds once the database is back


def test_only_errors_of_the_events_own_count_as_poison():
    assert is_poison(ValueError("vector_sum must be a finite 1-D array"))
    assert is_poison(FloatingPointError("overflow"))
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert not is_poison(refused)
    assert not is_poison(MemoryError())
