"""All SQL about the embedding cache: each distinct text is encoded once per model, ever."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Embedding
from app.db.session import dialect_insert, in_chunks, one_of


def lookup(session: Session, model_id: str, hashes: list[bytes]) -> dict[bytes, np.ndarray]:
    """Cached vectors for these text hashes (missing ones are simply absent)."""
    found: dict[bytes, np.ndarray] = {}
    for chunk in in_chunks(hashes):
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model_id == model_id, one_of(session, Embedding.text_hash, chunk)
            )
        )
        for key, blob in rows.tuples():
            found[bytes(key)] = np.frombuffer(blob, dtype="<f4")
    return found


def insert_new(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store vectors whose (model_id, text_hash) is not stored yet; a concurrent writer's wins."""
    session.execute(
        dialect_insert(session, Embedding).on_conflict_do_nothing(
            index_elements=["model_id", "text_hash"]
        ),
        rows,
    )
