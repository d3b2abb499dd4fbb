"""Issue 10: ingest never waits on the model. The profile stage encodes with no transaction
open (no SQLite write lock, no PostgreSQL row locks), so a POST made while the worker is in
the middle of encoding a batch of new long texts is answered 202 at once; and when the
database really is locked, ingest answers 503 "busy" with Retry-After, not "unreachable"."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Event
from app.db.session import Database
from app.profile.service import StepResult, apply_pending
from tests.factories import post

# A long text, as real reviews are (~230 characters), different for every event.
LONG = (
    "Review {i}: a slow, patient film about a lighthouse keeper who writes letters to a "
    "daughter he has never met; the photography of the storms is remarkable and the ending, "
    "quiet as it is, stayed with me for days afterwards."
)


@pytest.fixture
def short_busy_url(database_url: str) -> str:
    """On SQLite the database with a busy timeout of 0.5 s instead of 30 s (the URL's
    `timeout`): code that holds the lock fails this test quickly instead of slowly."""
    return f"{database_url}?timeout=0.5" if database_url.startswith("sqlite") else database_url


def test_ingest_is_answered_while_the_worker_encodes(
    short_busy_url, db, embedder, make_client, make_settings
):
    """The worker folds a batch of 1,000 new long texts on a thread with the real model (some
    seconds of encoding); meanwhile this thread posts events and samples whether the worker
    holds a database connection. Before the fix the encode ran inside the worker's write
    transaction: SQLite answered the posts 503 after the busy timeout, and on PostgreSQL the
    worker held its connection for the whole step."""
    n = 1000
    post(
        db, [{"user_id": f"u{i % 40}", "type": "view", "text": LONG.format(i=i)} for i in range(n)]
    )
    client: TestClient = make_client(database_url=short_busy_url)
    worker_db = Database(short_busy_url)
    steps: list[StepResult] = []
    worker = threading.Thread(
        target=lambda: steps.append(apply_pending(worker_db, embedder, make_settings(batch_size=n)))
    )
    answers: list[int] = []
    holding: list[bool] = []  # per sample: whether the worker had a connection checked out
    worker.start()
    try:
        while worker.is_alive():
            holding.append(worker_db.engine.pool.checkedout() > 0)  # type: ignore[attr-defined]
            events = [
                {"user_id": f"late{len(answers)}-{j}", "type": "like", "text": "x"}
                for j in range(50)
            ]
            answers.append(client.post("/v1/events", json={"events": events}).status_code)
            time.sleep(0.02)
    finally:
        worker.join()
        worker_db.dispose()
    assert [(s.applied, s.encoded) for s in steps] == [(n, n)]
    assert len(answers) >= 5, "the posts did not overlap the worker's step"
    assert set(answers) == {202}  # before: 503 after the busy timeout (SQLite)
    # Reading the batch and writing the results are short; the encode, most of the step,
    # holds no connection (before: every sample held one).
    assert sum(holding) / len(holding) < 0.5, holding
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == n + 50 * len(answers)


def test_a_locked_sqlite_database_answers_busy_with_retry_after(
    short_busy_url, backend, db, make_client
):
    if backend != "sqlite":
        pytest.skip("SQLite's single write lock")
    client: TestClient = make_client(database_url=short_busy_url)
    holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        response = client.post(
            "/v1/events", json={"events": [{"user_id": "a", "type": "view", "text": "x"}]}
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"] and "unreachable" not in response.json()["detail"]
