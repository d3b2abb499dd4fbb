"""A PostgreSQL database that is not UTF8 is refused with a message that says how to fix it
(on SQL_ASCII psycopg hands back bytes and SQLAlchemy would fail deep inside)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.config import load_settings
from app.db.migrate import upgrade
from app.db.session import Database, UnsupportedDatabaseError
from app.main import create_app
from tests.conftest import private_postgres_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ascii_url() -> Iterator[str]:
    base_url = os.environ.get("TEST_DATABASE_URL", "")
    if not base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    with private_postgres_database(base_url, encoding="SQL_ASCII") as url:
        yield url


def run_cli(url: str, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env |= {"APP_DATABASE_URL": url, "APP_LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "-m", "app", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_connection_to_a_sql_ascii_database_is_refused(ascii_url: str) -> None:
    db = Database(ascii_url)
    try:
        with (
            pytest.raises(UnsupportedDatabaseError, match="has encoding SQL_ASCII.*needs UTF8"),
            db.read() as session,
        ):
            session.execute(text("SELECT 1"))
    finally:
        db.dispose()


def test_migrations_refuse_it(ascii_url: str) -> None:
    with pytest.raises(UnsupportedDatabaseError, match="ENCODING 'UTF8' TEMPLATE template0"):
        upgrade(ascii_url)


@pytest.mark.parametrize("command", [["migrate"], ["worker"]])
def test_the_commands_exit_with_the_message_not_a_traceback(
    ascii_url: str, command: list[str]
) -> None:
    result = run_cli(ascii_url, *command)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{command[0]} failed: PostgreSQL database" in result.stderr
    assert "needs UTF8" in result.stderr
    assert "Traceback" not in result.stderr
    assert "bytes-like" not in result.stderr


def test_readyz_says_why(ascii_url: str) -> None:
    settings = load_settings(database_url=ascii_url, worker="off", api_keys={})
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "unsupported: PostgreSQL database" in response.json()["checks"]["database"]
