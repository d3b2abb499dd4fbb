"""The profile stage: claim unapplied events, embed their texts, fold them into profiles."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.base import utcnow
from app.db.errors import classify, describe
from app.db.session import Database, is_sqlite
from app.embedding import service as embedding_service
from app.embedding.embedder import Embedder, EmbedderError
from app.event import repository as event_repository
from app.event.repository import PendingEvent
from app.privacy import pseudonym
from app.profile import repository as profile_repository
from app.profile.math import ProfileSum, decode_sum, encode_sum, fold
from app.quarantine import service as quarantine_service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    applied: int = 0
    encoded: int = 0  # cache misses encoded by the model
    encode_seconds: float = 0.0
    quarantined: int = 0  # events set aside because they could not be folded


def apply_pending(db: Database, embedder: Embedder, settings: Settings) -> StepResult:
    """Apply up to `batch_size` events exactly once: fold + mark applied in one transaction.

    When the batch fails for a reason of its own (not the database's, not the model's), it is
    bisected to the events that fail; those are quarantined with the reason and the others are
    applied, so one user's bad data never holds up anyone else's events."""
    claimed: list[PendingEvent] = []
    try:
        return _apply_batch(db, embedder, settings, claimed)
    except Exception as exc:
        if not claimed or not is_poison(exc):
            raise
        return _isolate(db, embedder, settings, claimed, exc)


def is_poison(exc: BaseException) -> bool:
    """Whether a failed step may be the events' fault. The database's trouble, a model that
    cannot encode at all, or memory, are everyone's: those are retried, never quarantined."""
    return classify(exc) is None and not isinstance(exc, EmbedderError | MemoryError)


def _apply_batch(
    db: Database, embedder: Embedder, settings: Settings, claimed: list[PendingEvent]
) -> StepResult:
    """The normal step; fills `claimed` with what it took, so a failure knows what to bisect."""
    encoded, seconds = 0, 0.0
    if is_sqlite(db.engine):
        # SQLite has one writer lock: encode before taking it, so ingest never waits on the model.
        with db.read() as session:
            peeked = event_repository.peek_pending(session, settings.batch_size)
        if peeked:
            claimed[:] = peeked  # an encoding failure is bisected over these
            started = time.perf_counter()
            with db.write() as session:
                texts = [e.text for e in peeked]
                encoded = embedding_service.embed_texts(session, embedder, texts)[1]
            seconds = time.perf_counter() - started
    with db.write() as session:
        events = event_repository.claim_pending(session, settings.batch_size)
        claimed[:] = events
        if not events:
            return StepResult(encoded=encoded, encode_seconds=seconds)
        started = time.perf_counter()
        vectors, misses = embedding_service.embed_texts(session, embedder, [e.text for e in events])
        if misses:
            seconds += time.perf_counter() - started
        fold_events(session, events, vectors, embedder=embedder, settings=settings)
        event_repository.mark_applied(session, [e.id for e in events], now=utcnow())
    return StepResult(applied=len(events), encoded=encoded + misses, encode_seconds=seconds)


def _isolate(
    db: Database,
    embedder: Embedder,
    settings: Settings,
    events: list[PendingEvent],
    error: Exception,
) -> StepResult:
    """Bisect a failed batch: halves that fold are applied, a single event that fails is
    quarantined. A batch with one bad event costs about 2 log2(n) short transactions."""
    applied = 0
    quarantined: dict[tuple[str, str], list[int]] = defaultdict(list)  # (user, reason) -> ids
    # Depth first, left half first: the events of a failing half are retried in id order.
    work: list[tuple[list[PendingEvent], Exception]] = [(events, error)]
    while work:
        group, failure = work.pop()
        if len(group) == 1:
            reason = describe(failure)
            if _quarantine(db, group[0], reason):
                quarantined[(group[0].user_id, reason)].append(group[0].id)
            continue
        middle = len(group) // 2
        for half in (group[middle:], group[:middle]):  # popped in reverse: left half first
            try:
                applied += _apply_exactly(db, embedder, settings, half)
            except Exception as exc:
                if not is_poison(exc):
                    raise
                work.append((half, exc))
    for (user_id, reason), ids in quarantined.items():
        # One line per user and reason. The events' numbers and a keyed hash of the user are
        # enough to find them (GET /v1/quarantine); the user's id never reaches the logs.
        log.warning(
            "quarantined %d event(s) of user %s (%s): %s",
            len(ids),
            pseudonym(user_id),
            ", ".join(map(str, ids)) if len(ids) <= 5 else f"{ids[0]} ... {ids[-1]}",
            reason,
        )
    return StepResult(applied=applied, quarantined=sum(len(ids) for ids in quarantined.values()))


def _apply_exactly(
    db: Database, embedder: Embedder, settings: Settings, events: list[PendingEvent]
) -> int:
    """Fold these events (those still processable) in one transaction; returns how many."""
    # Embeddings first, committed on their own: a fold that fails next does not undo them,
    # so deeper bisection levels find them cached instead of encoding the texts again.
    with db.write() as session:
        embedding_service.embed_texts(session, embedder, [e.text for e in events])
    with db.write() as session:
        claimed = event_repository.claim_ids(session, [e.id for e in events])
        if not claimed:
            return 0
        vectors, _ = embedding_service.embed_texts(session, embedder, [e.text for e in claimed])
        fold_events(session, claimed, vectors, embedder=embedder, settings=settings)
        event_repository.mark_applied(session, [e.id for e in claimed], now=utcnow())
    return len(claimed)


def _quarantine(db: Database, event: PendingEvent, reason: str) -> bool:
    with db.write() as session:
        if not event_repository.claim_ids(session, [event.id]):
            return False  # applied or quarantined by another worker meanwhile
        quarantine_service.quarantine(
            session, events=[(event.id, event.user_id)], reason=reason, now=utcnow()
        )
    return True


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
        session, list(by_user), model_id=embedder.space_id, placeholder=placeholder
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
