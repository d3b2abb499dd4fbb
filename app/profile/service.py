"""The profile stage: claim unapplied events, embed their texts, fold them into profiles."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.base import utcnow
from app.db.errors import classify, describe
from app.db.session import Database
from app.embedding import service as embedding_service
from app.embedding.embedder import Embedder, EmbedderError
from app.event import repository as event_repository
from app.event.repository import PendingEvent
from app.privacy import pseudonym
from app.profile import repository as profile_repository
from app.profile.math import decode_sum, fold_many
from app.profile.repository import FoldedProfiles
from app.quarantine import service as quarantine_service

log = logging.getLogger(__name__)
# A step takes the oldest batch_size events and, while a backlog waits, up to this many
# batches' worth of the same users' other pending events (event_repository.peek_pending).
COALESCE = 8


@dataclass(frozen=True)
class StepResult:
    applied: int = 0
    encoded: int = 0  # cache misses encoded by the model
    encode_seconds: float = 0.0
    quarantined: int = 0  # events set aside because they could not be folded
    # The last id of a batch that another worker claimed first: the next step peeks after it
    # instead of waiting for that worker's commit (None: start from the oldest again).
    taken_up_to: int | None = None


def apply_pending(
    db: Database, embedder: Embedder, settings: Settings, *, after: int | None = None
) -> StepResult:
    """Apply a batch of events exactly once: fold + mark applied in one transaction. `after`:
    the previous step's `taken_up_to`, so that concurrent workers take different batches.

    When the batch fails for a reason of its own (not the database's, not the model's), it is
    bisected to the events that fail; those are quarantined with the reason and the others are
    applied, so one user's bad data never holds up anyone else's events."""
    claimed: list[PendingEvent] = []
    try:
        return _apply_batch(db, embedder, settings, claimed, after)
    except Exception as exc:
        if not claimed or not is_poison(exc):
            raise
        return _isolate(db, embedder, settings, claimed, exc)


def is_poison(exc: BaseException) -> bool:
    """Whether a failed step may be the events' fault. The database's trouble, a model that
    cannot encode at all, or memory, are everyone's: those are retried, never quarantined."""
    return classify(exc) is None and not isinstance(exc, EmbedderError | MemoryError)


def _apply_batch(
    db: Database,
    embedder: Embedder,
    settings: Settings,
    claimed: list[PendingEvent],
    after: int | None,
) -> StepResult:
    """The normal step; fills `claimed` with what it took, so a failure knows what to bisect.

    Three short transactions and no long one: peek at the next events (a read), embed their
    texts (encoding with no transaction open, then one short write of the new vectors), then
    claim, fold and mark applied (one short write). Ingest never waits on the model."""
    with db.read() as session:
        peeked = event_repository.peek_pending(
            session, settings.batch_size, coalesce=COALESCE, after=after
        )
    if not peeked:
        return StepResult()
    claimed[:] = peeked  # an encoding or folding failure is bisected over these
    embedded = embedding_service.embed(db, embedder, [e.text for e in peeked])
    applied = _fold_claimed(db, embedder, settings, peeked, embedded.vectors)
    return StepResult(
        applied=applied,
        encoded=embedded.misses,
        encode_seconds=embedded.encode_seconds,
        # Peeks are not locks: another worker may have claimed this batch first.
        taken_up_to=None if applied else max(e.id for e in peeked),
    )


def _fold_claimed(
    db: Database,
    embedder: Embedder,
    settings: Settings,
    events: list[PendingEvent],
    vectors: dict[str, np.ndarray],
) -> int:
    """Claim these events if still processable, fold and mark them, in one short transaction;
    returns how many. Events another worker took meanwhile are skipped; an event whose item
    text changed since it was peeked (and is not cached yet) stays pending for the next step."""
    with db.write() as session:
        texts = event_repository.claim_ids(session, [e.id for e in events])
        unknown = set(texts.values()) - vectors.keys()
        if unknown:
            vectors = {**vectors, **embedding_service.cached_vectors(session, embedder, unknown)}
        claimed = [
            replace(e, text=texts[e.id]) if e.text != texts[e.id] else e
            for e in events
            if e.id in texts and texts[e.id] in vectors
        ]
        if not claimed:
            return 0
        fold_events(session, claimed, vectors, embedder=embedder, settings=settings)
        event_repository.mark_applied(session, [e.id for e in claimed], now=utcnow())
    return len(claimed)


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
    # Embeddings first, committed on their own and encoded outside any transaction: a fold
    # that fails next does not undo them, so deeper bisection levels find them cached.
    embedded = embedding_service.embed(db, embedder, [e.text for e in events])
    return _fold_claimed(db, embedder, settings, events, embedded.vectors)


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
    """Add each user's new events to their decayed sum (order-free: see app/profile/math.py),
    for all users of the batch in one numpy pass and one write."""
    now = utcnow()
    locked = profile_repository.lock_profiles(
        session, [e.user_id for e in events], model_id=embedder.space_id, now=now
    )
    row = {user_id: i for i, user_id in enumerate(locked.user_ids)}
    current = np.zeros((len(row), embedder.dim))
    for i, (blob, count) in enumerate(zip(locked.sums, locked.event_counts, strict=True)):
        if count:
            current[i] = decode_sum(blob, embedder.dim)
    users = np.array([row[e.user_id] for e in events], dtype=np.intp)
    weights = settings.event_weights
    folded = fold_many(
        current,
        np.array(locked.ref_times, dtype=np.float64),
        np.array(locked.event_counts) > 0,
        users=users,
        times=np.array([e.occurred_at.timestamp() for e in events]),
        weights=np.array([_weight(e, weights) for e in events]),
        vectors=np.stack([vectors[e.text] for e in events]),
        half_life_seconds=settings.profile_half_life_seconds,
    )
    newest = [now] * len(row)  # every row gets at least one event, so all are replaced
    seen = [False] * len(row)
    for i, e in zip(users.tolist(), events, strict=True):
        if not seen[i] or e.occurred_at > newest[i]:
            newest[i], seen[i] = e.occurred_at, True
    profile_repository.write_folded(
        session,
        FoldedProfiles(
            user_ids=locked.user_ids,
            sums=folded.sums,
            ref_times=folded.ref_times,
            added=np.bincount(users, minlength=len(row)).tolist(),
            newest=newest,
        ),
        now=now,
    )


def _weight(event: PendingEvent, weights: dict[str, float]) -> float:
    # A type dropped from the settings since ingest contributes nothing.
    return weights.get(event.type, 0.0) if event.weight is None else event.weight
