"""Sampling profiles for evaluations, refits and maps: random, bounded, and never a sort of the
whole table (TABLESAMPLE on PostgreSQL, random rowids on SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, event, text

from app.db.models import UserProfile
from app.profile import repository as profile_repository
from benchmarks import seed

USERS = 2000


def test_a_sample_is_about_limit_distinct_profiles_drawn_at_random(db):
    ids = seed.profiles(db, USERS, dim=8, model_id="test", clusters=2)
    with db.write() as session:  # erased users leave gaps; empty profiles are never drawn
        session.execute(delete(UserProfile).where(UserProfile.user_id.in_(ids[:200])))
        session.execute(
            UserProfile.__table__.update()
            .where(UserProfile.user_id.in_(ids[200:300]))
            .values(event_count=0)
        )
    empty = set(ids[200:300])
    draws = []
    with db.read() as session:
        for _ in range(3):
            rows = profile_repository.sample(session, 200)
            users = [user_id for user_id, _ in rows]
            assert len(users) == len(set(users))  # no profile twice
            assert 150 <= len(users) <= 200, len(users)
            assert not empty & set(users) and all(blob for _, blob in rows)
            draws.append(set(users))
        everyone = profile_repository.sample(session, USERS)
    assert draws[0] != draws[1] != draws[2]  # random, not the same rows every time
    # Spread over the table, not one end of it: both halves of the id order are drawn from.
    position = {user_id: i for i, user_id in enumerate(ids)}
    assert all(min(map(position.get, d)) < USERS / 2 < max(map(position.get, d)) for d in draws)
    assert len(everyone) == USERS - 300  # fewer profiles than the limit: all of them


@pytest.mark.postgres_only
def test_a_big_table_is_sampled_by_pages_on_postgresql(db, monkeypatch):
    """TABLESAMPLE SYSTEM (whole pages) from SYSTEM_SAMPLE_FROM profiles; this table stands in
    for a big one. Pages are coarse, so only the size and the distinctness are asserted."""
    seed.profiles(db, USERS, dim=8, model_id="test", clusters=2)
    monkeypatch.setattr(profile_repository, "SYSTEM_SAMPLE_FROM", 0)
    with db.read() as session:
        for _ in range(3):
            users = [user_id for user_id, _ in profile_repository.sample(session, 400)]
            assert len(users) == len(set(users)) and 0.9 * 400 <= len(users) <= 400


@pytest.mark.postgres_only
def test_a_big_table_is_sampled_without_counting_it(db, monkeypatch):
    """Counting a million profiles reads the whole table; past 2 * SYSTEM_SAMPLE_FROM (made 0
    here) the planner's estimate, fresh after ANALYZE, sets the sampling rate instead."""
    seed.profiles(db, USERS, dim=8, model_id="test", clusters=2)
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE user_profile"))
        conn.commit()
    monkeypatch.setattr(profile_repository, "SYSTEM_SAMPLE_FROM", 0)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2].lower())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with db.read() as session:
            users = [user_id for user_id, _ in profile_repository.sample(session, 400)]
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(users) == len(set(users)) and 0.9 * 400 <= len(users) <= 400
    assert any("reltuples" in s for s in statements)
    assert not any("count(" in s for s in statements), statements
