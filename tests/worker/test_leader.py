"""The trainer lock: one holder, visible to others, and freed when released."""

from __future__ import annotations

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
