"""Per model version, each cluster's items ranked by what its members engaged with: computed
by the worker after an evaluation, off the request path."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.assignment import repository as assignment_repository
from app.assignment import service as assignment_service
from app.config import Settings
from app.db.session import Database, in_chunks
from app.embedding import repository as embedding_repository
from app.embedding.embedder import text_hash
from app.event import repository as event_repository
from app.item import repository as item_repository
from app.recommend import repository as recommend_repository

log = logging.getLogger(__name__)
GLOBAL = -1  # the cluster_id of the ranking over every user (pending users get it)


def refresh(db: Database, *, version: int, settings: Settings, embedding_model: str) -> int:
    """Compute and store `version`'s rankings, each item with its text's embedding (from the
    cache of `embedding_model`); returns the rows stored."""
    started = time.perf_counter()
    # one snapshot (a transaction, which PostgreSQL's server-side cursor needs) for both reads
    with assignment_service.snapshot(db) as session:
        limit = settings.recommend_max_events
        cluster_of = dict(assignment_repository.all_clusters(session))
        newest = event_repository.newest_engagements(session, limit=limit)
        scores, counted = score(
            event_repository.item_engagements(session, limit=limit),
            cluster_of,
            newest={user: at.timestamp() for user, at in newest.items()},
            weights=settings.event_weights,
            half_life_seconds=settings.profile_half_life_seconds,
        )
    rows = top_rows(scores, per_cluster=settings.recommend_items_per_cluster)
    with db.read() as session:
        vectors = item_vectors(session, sorted({r["item_id"] for r in rows}), embedding_model)
    for row in rows:
        row["vector"] = vectors.get(row["item_id"])
    with db.write() as session:
        recommend_repository.replace(session, version=version, rows=rows)
    log.debug(
        "rankings of version %d: %d events, %d rows in %.2f s",
        version,
        counted,
        len(rows),
        time.perf_counter() - started,
    )
    return len(rows)


def score(
    events: Iterable[tuple[str, str, str, float | None, datetime]],
    cluster_of: Mapping[str, int],
    *,
    newest: Mapping[str, float],
    weights: Mapping[str, float],
    half_life_seconds: float,
) -> tuple[dict[int, dict[str, float]], int]:
    """(cluster -> item -> sum over its members' events on the item of w(type) *
    2^(-(t_u - t)/H), events counted), t_u the member's newest event (`newest`, epoch
    seconds): each member's engagement weighted as in their own profile. Every user also
    counts in GLOBAL. One pass over `events`, which may be a stream."""
    scores: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counted = 0
    for user_id, item_id, kind, weight, at in events:
        counted += 1
        w = weights.get(kind, 0.0) if weight is None else weight
        value = w * 2.0 ** (-(newest[user_id] - at.timestamp()) / half_life_seconds)
        scores[GLOBAL][item_id] += value
        cluster = cluster_of.get(user_id)
        if cluster is not None:
            scores[cluster][item_id] += value
    return scores, counted


def top_rows(
    scores: Mapping[int, Mapping[str, float]], *, per_cluster: int
) -> list[dict[str, Any]]:
    """The best `per_cluster` items with a positive score per cluster, as rows to store."""
    rows = []
    for cluster, items in scores.items():
        ranked = sorted((i for i in items.items() if i[1] > 0), key=lambda i: (-i[1], i[0]))
        rows += [
            {"cluster_id": cluster, "rank": rank, "item_id": item, "score": value}
            for rank, (item, value) in enumerate(ranked[:per_cluster])
        ]
    return rows


def item_vectors(session: Session, item_ids: list[str], embedding_model: str) -> dict[str, bytes]:
    """item_id -> its text's cached embedding as float16 bytes (unit length, as encoded)."""
    texts: dict[str, str] = {}
    for chunk in in_chunks(item_ids):
        texts.update(item_repository.texts(session, list(chunk)))
    hashes = {item: text_hash(text) for item, text in texts.items()}
    cached = embedding_repository.lookup(session, embedding_model, sorted(set(hashes.values())))
    return {
        item: cached[key].astype("<f2").tobytes() for item, key in hashes.items() if key in cached
    }
