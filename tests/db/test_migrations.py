"""The migrations build exactly the data model, idempotently, on both databases."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from app.db.base import Base
from app.db.migrate import code_head, upgrade
from app.db.session import Database


def test_upgrade_is_idempotent_and_matches_the_models(db, database_url):
    upgrade(database_url)  # already at head: a no-op
    upgrade(database_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            code_head()
        ]
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_command_builds_a_fresh_sqlite_file_twice(tmp_path):
    env = os.environ | {"APP_DATABASE_URL": f"sqlite:///{tmp_path}/fresh/app.db"}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "app", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    database = Database(env["APP_DATABASE_URL"])
    with database.engine.connect() as conn:
        tables = set(
            conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars()
        )
    database.dispose()
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/wal.db")
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    database.dispose()


def test_writers_wait_for_each_other_instead_of_failing(tmp_path):
    """Two write transactions at once on SQLite: the second waits, neither errors."""
    import threading

    url = f"sqlite:///{tmp_path}/two.db"
    upgrade(url)
    first, second = Database(url), Database(url)
    inside = threading.Event()
    errors: list[Exception] = []

    def slow_writer() -> None:
        with first.write() as session:
            session.execute(
                text("INSERT INTO item (item_id, text, updated_at) VALUES ('a', 'x', '2026-01-01')")
            )
            inside.set()
            threading.Event().wait(0.5)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    inside.wait(5)
    try:
        with second.write() as session:
            session.execute(
                text("INSERT INTO item (item_id, text, updated_at) VALUES ('b', 'y', '2026-01-01')")
            )
    except Exception as exc:  # pragma: no cover - the failure this test guards against
        errors.append(exc)
    thread.join()
    with second.read() as session:
        assert session.execute(text("SELECT count(*) FROM item")).scalar() == 2
    assert errors == []
    first.dispose()
    second.dispose()
