"""Embedding through the cache: each distinct text is encoded once per model, ever.

Encoding is the slowest thing the service does, so it never runs inside a transaction:
`embed` reads the cache in one short read, encodes the misses with no transaction open, and
stores them in one short write. (A transaction held across an encode holds SQLite's single
write lock, or PostgreSQL row and index locks, for seconds: ingest would wait on the model.)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.session import Database
from app.embedding import repository as embedding_repository
from app.embedding.embedder import Embedder, text_hash


@dataclass(frozen=True)
class Embedded:
    vectors: dict[str, np.ndarray]  # text -> the cache's canonical float32 vector
    misses: int  # texts the model encoded
    encode_seconds: float


MEMO_VECTORS = 16_384  # per database and process: ~27 MB of 384-d vectors


class _Memo:
    """The cache rows this process used last, in memory. A stored vector never changes (the
    first one stored for a text is canonical; rows are never rewritten), so the copy is exact:
    it only saves reading a catalogue's vectors from the database at every step."""

    def __init__(self) -> None:
        self._vectors: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the worker's thread and the API's threads

    def get(self, model_id: str, hashes: list[bytes]) -> dict[bytes, np.ndarray]:
        found = {}
        with self._lock:
            for key in hashes:
                vector = self._vectors.get((model_id, key))
                if vector is not None:
                    self._vectors.move_to_end((model_id, key))
                    found[key] = vector
        return found

    def put(self, model_id: str, vectors: dict[bytes, np.ndarray]) -> None:
        with self._lock:
            for key, vector in vectors.items():
                self._vectors[(model_id, key)] = vector
                self._vectors.move_to_end((model_id, key))
            while len(self._vectors) > MEMO_VECTORS:
                self._vectors.popitem(last=False)


_memos: WeakKeyDictionary[Database, _Memo] = WeakKeyDictionary()


def _memo(db: Database) -> _Memo:
    return _memos.setdefault(db, _Memo())


def forget(db: Database) -> None:
    """Drop this process's memory of `db`'s cache: for when the table was emptied by hand."""
    _memos.pop(db, None)


def embed(db: Database, embedder: Embedder, texts: Iterable[str]) -> Embedded:
    """Vectors for `texts`, encoding only cache misses, in one call and outside any
    transaction; the new vectors are committed before this returns."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    memo = _memo(db)
    cached = memo.get(embedder.model_id, sorted(unique.values()))
    unread = sorted(key for key in unique.values() if key not in cached)
    if unread:
        with db.read() as session:
            read = embedding_repository.lookup(session, embedder.model_id, unread)
        memo.put(embedder.model_id, read)
        cached.update(read)
    missing = [text for text, key in unique.items() if key not in cached]
    seconds = 0.0
    if missing:
        started = time.perf_counter()
        vectors = embedder.encode(missing)  # no transaction is open here
        seconds = time.perf_counter() - started
        rows = sorted(
            (
                {
                    "model_id": embedder.model_id,
                    "text_hash": unique[text],
                    "vector": vector.astype("<f4").tobytes(),
                    "created_at": utcnow(),
                }
                for text, vector in zip(missing, vectors, strict=True)
            ),
            key=lambda row: row["text_hash"],  # one lock order for concurrent workers
        )
        with db.write() as session:
            embedding_repository.insert_new(session, rows)
            # Read back rather than use our own vectors: a concurrent worker may have stored
            # the text first, and every profile must fold the one canonical vector for it.
            stored = embedding_repository.lookup(
                session, embedder.model_id, [row["text_hash"] for row in rows]
            )
        memo.put(embedder.model_id, stored)  # committed: canonical from now on
        cached.update(stored)
    return Embedded({text: cached[key] for text, key in unique.items()}, len(missing), seconds)


def cached_vectors(
    session: Session, embedder: Embedder, texts: Iterable[str]
) -> dict[str, np.ndarray]:
    """The cached vectors of `texts` (texts not in the cache are absent); never encodes."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    found = embedding_repository.lookup(session, embedder.model_id, sorted(unique.values()))
    return {text: found[key] for text, key in unique.items() if key in found}
