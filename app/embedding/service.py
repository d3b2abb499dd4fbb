"""Embedding through the cache: each distinct text is encoded once per model, ever."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.embedding import repository as embedding_repository
from app.embedding.embedder import Embedder, text_hash


def embed_texts(
    session: Session, embedder: Embedder, texts: list[str]
) -> tuple[dict[str, np.ndarray], int]:
    """Vectors for `texts`, encoding only cache misses, in one call; returns (vectors, misses)."""
    unique = {text: text_hash(text) for text in dict.fromkeys(texts)}
    cached = embedding_repository.lookup(session, embedder.model_id, sorted(unique.values()))
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
        embedding_repository.insert_new(session, rows)
        # Read back rather than use our own vectors: a concurrent worker may have stored the
        # text first, and every profile must fold the one canonical vector for it.
        cached.update(
            embedding_repository.lookup(
                session, embedder.model_id, [row["text_hash"] for row in rows]
            )
        )
    return {text: cached[key] for text, key in unique.items()}, len(missing)
