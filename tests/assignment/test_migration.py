"""Migration 0005 on a database that already holds history: kept, and each user's latest
row becomes the current assignment."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.db.migrate import upgrade
from app.db.session import Database
from tests.conftest import private_postgres_database

HISTORY = [  # user, version, cluster: u1 moved from 0 to 2, u2 stayed in 1
    ("u1", 1, 0),
    ("u2", 1, 1),
    ("u1", 2, 2),
    ("u2", 2, 1),
]


def migrate_with_history(url: str) -> dict[str, tuple[int, int]]:
    upgrade(url, "0004")
    db = Database(url)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        for user, version, cluster in HISTORY:
            conn.execute(
                text(
                    "INSERT INTO user_cluster (user_id, model_version, cluster_id, distance, "
                    "assigned_at) VALUES (:u, :v, :c, 0.5, :at)"
                ),
                {"u": user, "v": version, "c": cluster, "at": at},
            )
    upgrade(url)
    with db.engine.connect() as conn:
        current = {
            user: (cluster, version)
            for user, cluster, version in conn.execute(
                text("SELECT user_id, cluster_id, model_version FROM user_assignment")
            )
        }
        kept = conn.execute(text("SELECT count(*) FROM user_cluster")).scalar()
    db.dispose()
    assert kept == len(HISTORY)
    return current


def test_the_latest_history_row_becomes_the_current_assignment_on_sqlite(tmp_path):
    current = migrate_with_history(f"sqlite:///{tmp_path / 'old.db'}")
    assert current == {"u1": (2, 2), "u2": (1, 2)}


def test_the_same_on_postgresql():
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL: TEST_DATABASE_URL is not set")
    with private_postgres_database(base) as url:
        assert migrate_with_history(url) == {"u1": (2, 2), "u2": (1, 2)}
