"""Honest readiness (issue 9): /readyz fails, with the reason, when the schema is missing, the
database refuses writes or is full, or the worker cannot make progress; and every error names
which of these it is."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db.errors import Trouble, classify
from app.observability.logging import configure_logging
from app.worker.retry import Retry
from tests.conftest import private_postgres_database

EVENTS = {"events": [{"user_id": "u", "type": "view", "text": "t"}]}
BIG_BATCH = {
    "events": [
        {"user_id": f"u{i}", "type": "view", "text": f"{i} " + "x" * 3990} for i in range(1000)
    ]
}


def wait_for(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def unmigrated_url(backend: str, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database nobody ran `migrate` on, on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'never-migrated.db'}"
        return
    with private_postgres_database(os.environ["TEST_DATABASE_URL"]) as url:
        yield url


def test_ready_names_every_check(client):
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "schema": "ok", "writes": "ok"}


def test_not_ready_and_503_naming_migrate_on_a_database_never_migrated(
    make_client, unmigrated_url, restore_logging
):
    logs = io.StringIO()
    configure_logging("INFO", "text", stream=logs)
    client = make_client(database_url=unmigrated_url, worker="inline", worker_stall_seconds=0)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "missing" in response.json()["checks"]["schema"]
    assert "python -m app migrate" in response.json()["detail"]
    for answer in (
        client.post("/v1/events", json=EVENTS),
        client.get("/v1/users/u/cluster"),
        client.get("/v1/stats"),
    ):
        assert answer.status_code == 503
        assert "python -m app migrate" in answer.json()["detail"], answer.text
    worker = client.app.state.worker
    wait_for(lambda: worker.ready and worker.retry.failures >= 1)
    time.sleep(2.0)  # retries back off: a handful of tries, not ten per second
    assert worker.retry.failures <= 6
    checks = client.get("/readyz").json()["checks"]
    assert checks["worker"].startswith("failing for"), checks
    worker_lines = [line for line in logs.getvalue().splitlines() if "worker step" in line]
    assert len(worker_lines) == 1, worker_lines  # one line for a repeated error
    assert "python -m app migrate" in worker_lines[0]
    assert "Traceback" not in logs.getvalue()
    # A slow start says what it is doing: loading the model, then the first step.
    text = logs.getvalue()
    assert "worker loading the embedding model" in text and "loaded in" in text
    assert "worker first profile step" in text


def limit_sqlite_growth(engine) -> None:  # type: ignore[no-untyped-def]
    """The database file may not grow: what SQLite answers on a full disk (SQLITE_FULL)."""

    @sa_event.listens_for(engine, "connect")
    def _full(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()  # connections from now on are limited


def test_a_full_sqlite_database_is_a_503_saying_full_and_not_ready(make_client, backend):
    if backend != "sqlite":
        pytest.skip("simulates a full disk with SQLite's max_page_count")
    client = make_client()
    assert client.get("/readyz").status_code == 200
    limit_sqlite_growth(client.app.state.db.engine)
    response = client.post("/v1/events", json=BIG_BATCH)
    assert response.status_code == 503
    assert "full" in response.json()["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writes"].startswith("full"), ready.json()


def test_a_database_refusing_writes_is_not_ready(make_client, backend):
    client = make_client()
    engine = client.app.state.db.engine

    @sa_event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        if backend == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
        cursor.close()
        if backend == "postgresql":
            dbapi_connection.commit()

    engine.dispose()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writes"] == "read-only", ready.json()
    response = client.post("/v1/events", json=EVENTS)
    assert response.status_code == 503
    assert "read-only" in response.json()["detail"]


def test_a_busy_sqlite_database_is_busy_not_unreachable(make_client, backend, db):
    if backend != "sqlite":
        pytest.skip("holds SQLite's single write lock")
    client = make_client()
    with db.write() as session:  # another writer holds the lock for longer than a probe waits
        session.execute(text("DELETE FROM item"))
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writes"] == "busy", ready.json()


def test_errors_are_classified():
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert classify(refused) is Trouble.unreachable
    assert classify(ValueError("a bug")) is None


def test_a_repeated_worker_error_logs_once_and_backs_off_with_jitter(log_stream_records):
    retry = Retry()
    delays = []
    for _ in range(30):
        try:
            raise ValueError("profile sum overflowed")
        except ValueError as exc:
            delays.append(retry.failed(exc))
    errors = [r for r in log_stream_records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].exc_info is not None  # one traceback, not thirty
    assert 0.1 <= delays[0] <= 0.2 and max(delays) <= 30.0 and delays[-1] >= 15.0
    assert len({round(d, 6) for d in delays[-10:]}) > 1  # jittered, not in lockstep
    assert retry.status(stall_seconds=0).startswith("failing for")
    retry.succeeded()
    assert retry.status(stall_seconds=0) == "ok"
    assert "recovered after 30 failed steps" in log_stream_records[-1].getMessage()


@pytest.fixture
def log_stream_records() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("app.worker")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old)
