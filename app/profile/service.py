"""The profile stage: claim unapplied events, embed their texts, fold them into profiles."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.base import utcnow
from app.db.session import Database, is_sqlite
from app.embedding import service as embedding_service
from app.embedding.embedder import Embedder
from app.event import repository as event_repository
from app.event.repository import PendingEvent
from app.profile import repository as profile_repository
from app.profile.math import ProfileSum, decode_sum, encode_sum, fold


@dataclass(frozen=True)
class StepResult:
    applied: int = 0
    encoded: int = 0  # cache misses encoded by the model
    encode_seconds: float = 0.0


def apply_pending(db: Database, embedder: Embedder, settings: Settings) -> StepResult:
    """Apply up to `batch_size` events exactly once: fold + mark applied in one transaction."""
    encoded, seconds = 0, 0.0
    if is_sqlite(db.engine):
        # SQLite has one writer lock: encode before taking it, so ingest never waits on the model.
        with db.read() as session:
            texts = [e.text for e in event_repository.peek_pending(session, settings.batch_size)]
        if texts:
            started = time.perf_counter()
            with db.write() as session:
                encoded = embedding_service.embed_texts(session, embedder, texts)[1]
            seconds = time.perf_counter() - started
    with db.write() as session:
        events = event_repository.claim_pending(session, settings.batch_size)
        if not events:
            return StepResult(encoded=encoded, encode_seconds=seconds)
        started = time.perf_counter()
        vectors, misses = embedding_service.embed_texts(session, embedder, [e.text for e in events])
        if misses:
            seconds += time.perf_counter() - started
        fold_events(session, events, vectors, embedder=embedder, settings=settings)
        event_repository.mark_applied(session, [e.id for e in events], now=utcnow())
    return StepResult(applied=len(events), encoded=encoded + misses, encode_seconds=seconds)


def fold_events(
    session: Session,
    events: list[PendingEvent],
    vectors: dict[str, np.ndarray],
    *,
    embedder: Embedder,
    settings: Settings,
) -> None:
    """Add each user's new events to their decayed sum (order-free: see app/profile/math.py)."""
    by_user: dict[str, list[PendingEvent]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    now = utcnow()
    placeholder = {
        "vector_sum": encode_sum(ProfileSum(np.zeros(embedder.dim), 0.0)),
        "ref_time": 0.0,
        "event_count": 0,
        "last_event_at": now,
        "updated_at": now,
        "version": 0,
        "trained_version": 0,
    }
    profiles = profile_repository.lock_profiles(
        session, list(by_user), model_id=embedder.model_id, placeholder=placeholder
    )
    weights = settings.event_weights
    for user_id, user_events in by_user.items():
        profile = profiles[user_id]
        current = None
        if profile.event_count:
            current = ProfileSum(decode_sum(profile.vector_sum, embedder.dim), profile.ref_time)
        updated = fold(
            current,
            times=np.array([e.occurred_at.timestamp() for e in user_events]),
            weights=np.array([_weight(e, weights) for e in user_events]),
            vectors=np.stack([vectors[e.text] for e in user_events]),
            half_life_seconds=settings.profile_half_life_seconds,
        )
        newest = max(e.occurred_at for e in user_events)
        if profile.event_count:  # an existing profile; a new one starts from the placeholder
            newest = max(newest, profile.last_event_at)
        profile.vector_sum = encode_sum(updated)
        profile.ref_time = updated.ref_time
        profile.last_event_at = newest
        profile.event_count += len(user_events)
        profile.updated_at = now
        profile.version += 1


def _weight(event: PendingEvent, weights: dict[str, float]) -> float:
    # A type dropped from the settings since ingest contributes nothing.
    return weights.get(event.type, 0.0) if event.weight is None else event.weight
