"""Seeding straight into the database, for benchmarks whose subject is not ingest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import insert

from app.config import Settings, load_settings
from app.db.models import Embedding, Event, Item, UserProfile
from app.db.session import Database
from app.embedding import repository as embedding_repository
from app.embedding.embedder import DEFAULT_MODEL_ID, Embedder, text_hash
from app.model.trainer import Trainer
from benchmarks.common import fresh_database, work_dir

CHUNK = 5000


def _insert(db: Database, table, rows: Iterable[dict]) -> int:  # type: ignore[no-untyped-def]
    chunk, total = [], 0
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            with db.write() as session:
                session.connection().execute(insert(table), chunk)
            total, chunk = total + len(chunk), []
    if chunk:
        with db.write() as session:
            session.connection().execute(insert(table), chunk)
        total += len(chunk)
    return total


def items(db: Database, texts: dict[str, str]) -> int:
    now = datetime.now(UTC)
    rows = ({"item_id": i, "text": t, "updated_at": now} for i, t in texts.items())
    return _insert(db, Item.__table__, rows)


def events(db: Database, rows: Iterable[dict], *, applied: bool = False) -> int:
    """Rows need user_id, type, item_id or text, occurred_at; the rest is filled in."""
    now = datetime.now(UTC)

    def complete() -> Iterable[dict]:
        for n, row in enumerate(rows):
            yield {
                "event_id": row.get("event_id", f"seed-{n}"),
                "text": None,
                "item_id": None,
                "weight": None,
                "received_at": now,
                "applied_at": now if applied else None,
                **row,
            }

    return _insert(db, Event.__table__, complete())


def clustered_vectors(n: int, dim: int, *, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around `clusters` random directions: something for k-means to find."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    X = centers[rng.integers(clusters, size=n)] + 0.08 * rng.standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def profiles(
    db: Database, n: int, *, dim: int, model_id: str, clusters: int = 8, seed: int = 0
) -> list[str]:
    """n untrained profiles `u0..u{n-1}` with clustered unit vector sums; returns the ids."""
    X = clustered_vectors(n, dim, clusters=clusters, seed=seed)
    now = datetime.now(UTC)
    ids = [f"u{i}" for i in range(n)]
    rows = (
        {
            "user_id": user_id,
            "model_id": model_id,
            "vector_sum": X[i].astype("<f8").tobytes(),
            "ref_time": now.timestamp(),
            "event_count": 10,
            "last_event_at": now - timedelta(minutes=1),
            "updated_at": now,
            "version": 1,
            "trained_version": 0,
        }
        for i, user_id in enumerate(ids)
    )
    _insert(db, UserProfile.__table__, rows)
    return ids


def warm_cache(db: Database, embedder: Embedder, texts: list[str]) -> None:
    """Put every text's vector in the embedding cache, as the profile stage would have.

    The vectors are encoded once per machine and kept in a file beside the logs: on a shared
    2-core machine, encoding the 9.7k MovieLens texts takes minutes, and a warm benchmark is
    not about encoding.
    """
    texts = list(dict.fromkeys(texts))
    digest = hashlib.sha256("\n".join([embedder.model_id, *texts]).encode()).hexdigest()[:16]
    path = work_dir("cache") / f"vectors-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        vectors = embedder.encode(texts)
        np.save(path, vectors)
    now = datetime.now(UTC)
    rows = (
        {
            "model_id": embedder.model_id,
            "text_hash": text_hash(text),
            "vector": vector.astype("<f4").tobytes(),
            "created_at": now,
        }
        for text, vector in zip(texts, vectors, strict=True)
    )
    with db.write() as session:  # leave out what the cache already holds
        known = set(
            embedding_repository.lookup(session, embedder.model_id, [text_hash(t) for t in texts])
        )
    _insert(db, Embedding.__table__, (r for r in rows if r["text_hash"] not in known))


def trained_population(
    url: str, *, users: int, events_per_user: int, dim: int = 384
) -> tuple[Database, Settings, Trainer]:
    """A fresh database holding `users` profiles, their applied view events, and a first
    model (version 1) trained on them: the population the query-side benchmarks read."""
    fresh_database(url)
    db = Database(url)
    ids = profiles(db, users, dim=dim, model_id=DEFAULT_MODEL_ID)
    now = datetime.now(UTC)
    events(
        db,
        (
            {"event_id": f"e{n}-{i}", "user_id": user, "type": "view",
             "item_id": f"m{(n * 7 + i) % 5000}", "occurred_at": now}
            for n, user in enumerate(ids)
            for i in range(events_per_user)
        ),
        applied=True,
    )  # fmt: skip
    settings = load_settings(database_url=url, worker="off", api_keys={}, min_users_first_fit=2)
    trainer = Trainer(settings, embedding_model=DEFAULT_MODEL_ID, dim=dim)
    version = trainer.step(db).version
    assert version == 1, version
    return db, settings, trainer
