"""Issue 10: ingest never waits on the model. The profile stage encodes with no transaction
open (no SQLite write lock, no PostgreSQL row locks), so a POST made while the worker is in
the middle of encoding a batch of new long texts is answered 202 at once; and when the
database really is locked, ingest answers 503 "busy" with Retry-After, not "unreachable"."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import session as db_session
from app.db.models import Event
from app.db.session import Database
from app.embedding.embedder import Embedder
from app.profile.service import apply_pending
from tests.factories import post

# A long text, as real reviews are (~230 characters), different for every event.
LONG = (
    "Review {i}: a slow, patient film about a lighthouse keeper who writes letters to a "
    "daughter he has never met; the photography of the storms is remarkable and the ending, "
    "quiet as it is, stayed with me for days afterwards."
)


class WatchedEmbedder:
    """The real model, unchanged; before each encode it runs `during` (the test's probe of
    what the database allows while the model works) and records the worker's open
    connections."""

    def __init__(self, inner: Embedder, db: Database, during: Callable[[], int]) -> None:
        self.model_id, self.space_id, self.dim = inner.model_id, inner.space_id, inner.dim
        self._inner, self._db, self._during = inner, db, during
        self.open_connections: list[int] = []
        self.answers: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.open_connections.append(self._db.engine.pool.checkedout())  # type: ignore[attr-defined]
        self.answers.append(self._during())
        return self._inner.encode(texts)


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked SQLite database fails after 0.5 s instead of 30 s (set per new connection):
    code that holds the lock fails this test quickly instead of slowly."""
    monkeypatch.setattr(db_session, "SQLITE_BUSY_TIMEOUT_MS", 500)


def test_ingest_is_answered_while_the_worker_encodes(
    short_busy_timeout, db, embedder, make_client, make_settings
):
    n = 300
    post(
        db, [{"user_id": f"u{i % 40}", "type": "view", "text": LONG.format(i=i)} for i in range(n)]
    )
    client: TestClient = make_client()
    sent = iter(range(1_000_000))

    def ingest_now() -> int:
        events = [{"user_id": f"late{next(sent)}", "type": "like", "text": "x"} for _ in range(50)]
        return client.post("/v1/events", json={"events": events}).status_code

    worker_db = Database(make_settings().database_url)
    watched = WatchedEmbedder(embedder, worker_db, ingest_now)
    try:
        step = apply_pending(worker_db, watched, make_settings(batch_size=n))
    finally:
        worker_db.dispose()
    assert (step.applied, step.encoded) == (n, n)
    assert watched.answers == [202]  # today: 503 after the busy timeout (SQLite)
    assert watched.open_connections == [0]  # no transaction of the worker's spans the encode
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == n + 50


def test_a_locked_sqlite_database_answers_busy_with_retry_after(
    short_busy_timeout, backend, db, make_client
):
    if backend != "sqlite":
        pytest.skip("SQLite's single write lock")
    client: TestClient = make_client()
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
