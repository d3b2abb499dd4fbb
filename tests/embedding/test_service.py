"""Embedding through the cache, on a real database with the real model."""

from __future__ import annotations

import numpy as np
from sqlalchemy import event

from app.db.session import Database
from app.embedding import repository as embedding_repository
from app.embedding import service as embedding_service
from app.embedding.embedder import text_hash


def cache_reads(db: Database, run) -> int:  # type: ignore[no-untyped-def]
    """How many statements `run()` sends that read the embedding cache."""
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    return sum("FROM embedding" in s for s in statements)


def test_vectors_read_once_are_served_from_memory_exactly(db, embedder, monkeypatch):
    texts = [f"a catalogue item {i}" for i in range(30)]
    first = embedding_service.embed(db, embedder, texts[:20])
    assert first.misses == 20
    # Read back from the database by another process: the memo holds the stored vectors.
    other = Database(str(db.engine.url.render_as_string(hide_password=False)))
    try:
        assert embedding_service.embed(other, embedder, texts[:20]).misses == 0
        again = [None]
        assert cache_reads(other, lambda: again.__setitem__(0, embedding_service.embed(
            other, embedder, texts[:20]))) == 0  # fmt: skip
        with other.read() as session:
            stored = embedding_repository.lookup(
                session, embedder.model_id, [text_hash(t) for t in texts[:20]]
            )
        for text in texts[:20]:
            assert np.array_equal(again[0].vectors[text], stored[text_hash(text)])
        # Ten new texts and ten known ones: only the new ones are read (and encoded).
        assert cache_reads(other, lambda: embedding_service.embed(other, embedder, texts[10:])) > 0
        # Bounded: the oldest entries are dropped first.
        monkeypatch.setattr(embedding_service, "MEMO_VECTORS", 5)
        fresh = [f"another item {i}" for i in range(8)]
        embedding_service.embed(other, embedder, fresh)  # stored and remembered, 5 kept
        assert cache_reads(other, lambda: embedding_service.embed(other, embedder, fresh)) > 0
    finally:
        other.dispose()
