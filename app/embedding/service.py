"""Embedding through the cache: each distinct text is encoded once per model, ever.

Encoding is the slowest thing the service does, so it never runs inside a transaction:
`embed` reads the cache in one short read, encodes the misses with no transaction open, and
stores them in one short write. (A transaction held across an encode holds SQLite's single
write lock, or PostgreSQL row and index locks, for seconds: ingest would wait on the model.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

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


def embed(db: Database, embedder: Embedder, texts: Iterable[str]) -> Embedded:
    """Vectors for `texts`, encoding only cache misses, in one call and outside any
    transaction; the new vectors are committed before this returns."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    with db.read() as session:
        cached = embedding_repository.lookup(session, embedder.model_id, sorted(unique.values()))
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
            cached.update(
                embedding_repository.lookup(
                    session, embedder.model_id, [row["text_hash"] for row in rows]
                )
            )
    return Embedded({text: cached[key] for text, key in unique.items()}, len(missing), seconds)


def cached_vectors(
    session: Session, embedder: Embedder, texts: Iterable[str]
) -> dict[str, np.ndarray]:
    """The cached vectors of `texts` (texts not in the cache are absent); never encodes."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    found = embedding_repository.lookup(session, embedder.model_id, sorted(unique.values()))
    return {text: found[key] for text, key in unique.items() if key in found}
