"""The embedding cache in the database: each distinct text is encoded once per model, ever."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Embedding
from app.db.session import dialect_insert, in_chunks
from app.embedding.embedder import Embedder, text_hash


def lookup(session: Session, model_id: str, hashes: list[bytes]) -> dict[bytes, np.ndarray]:
    """Cached vectors for these text hashes (missing ones are simply absent)."""
    found: dict[bytes, np.ndarray] = {}
    for chunk in in_chunks(hashes):
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model_id == model_id, Embedding.text_hash.in_(chunk)
            )
        )
        for key, blob in rows.tuples():
            found[bytes(key)] = np.frombuffer(blob, dtype="<f4")
    return found


def embed_texts(
    session: Session, embedder: Embedder, texts: list[str]
) -> tuple[dict[str, np.ndarray], int]:
    """Vectors for `texts`, encoding only cache misses, in one call; returns (vectors, misses)."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    cached = lookup(session, embedder.model_id, sorted(unique.values()))
    missing = [text for text, key in unique.items() if key not in cached]
    if missing:
        vectors = embedder.encode(missing)
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
        session.execute(
            dialect_insert(session, Embedding).on_conflict_do_nothing(
                index_elements=["model_id", "text_hash"]
            ),
            rows,
        )
        # Read back rather than use our own vectors: a concurrent worker may have stored the
        # text first, and every profile must fold the one canonical vector for it.
        cached.update(lookup(session, embedder.model_id, [row["text_hash"] for row in rows]))
    return {text: cached[key] for text, key in unique.items()}, len(missing)
