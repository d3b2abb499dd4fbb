"""All SQL about the embedding cache: each distinct text is encoded once per model, ever."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import or_, select
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


def lookup_in_space(
    session: Session, space_id: str, hashes: list[bytes]
) -> dict[bytes, np.ndarray]:
    """Cached vectors for these text hashes from any backend of the model `space_id` (cache
    keys `space_id` and `space_id@runtime-precision`): a reader without an embedder, like the
    API, does not know which backend the workers run. Backends agree to a cosine of 0.9999
    (verified before use); where two hold a text, the smallest key wins, so the answer depends
    only on what is cached, never on the order it was read in."""
    found: dict[bytes, np.ndarray] = {}
    in_space = or_(
        Embedding.model_id == space_id,
        Embedding.model_id.startswith(space_id + "@", autoescape=True),
    )
    for chunk in in_chunks(hashes):
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector)
            .where(in_space, one_of(session, Embedding.text_hash, chunk))
            .order_by(Embedding.model_id.desc())
        )
        for key, blob in rows.tuples():  # the smallest key comes last and stays
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
