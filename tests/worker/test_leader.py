"""The trainer lock: one holder, visible to others, and freed when released."""

from __future__ import annotations

import time

import pytest

from app.db.session import Database
from app.worker.leader import LeaderLock, trainer_present


def test_a_released_lock_is_free_for_the_next_trainer_in_the_same_process(db):
    first, second = LeaderLock(db), LeaderLock(db)
    assert not trainer_present(db)
    assert first.try_acquire() and not second.try_acquire()
    assert trainer_present(db) and first.still_held()
    first.release()  # PostgreSQL: the pooled connection must not keep the session's lock
    assert not trainer_present(db)
    assert second.try_acquire() and trainer_present(db)
    second.release()
    assert not trainer_present(db)


def test_the_lock_survives_a_server_that_ends_idle_transactions(backend, database_url):
    """Production servers often set idle_in_transaction_session_timeout. The lock's connection
    checked it inside a transaction it never ended, so the server killed that session and the
    trainer lost its lock every few seconds (and an open transaction held back vacuum)."""
    if backend != "postgresql":
        pytest.skip("the lock is a file on SQLite")
    db = Database(f"{database_url}?options=-c%20idle_in_transaction_session_timeout%3D300")
    lock = LeaderLock(db)
    try:
        assert lock.try_acquire() and lock.still_held()
        time.sleep(1)  # beyond the server's timeout
        assert lock.still_held()
    finally:
        lock.release()
        db.dispose()
