"""All SQL about user profiles and the event work queue they are folded from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Event, Item, ModelCheckpoint, UserProfile
from app.db.session import dialect_insert, rowcount
from app.event.repository import PROCESSABLE


@dataclass(frozen=True)
class PendingEvent:
    id: int
    user_id: str
    type: str
    weight: float | None
    occurred_at: datetime
    text: str  # the event's own text, else its item's


def _pending_query(limit: int):  # type: ignore[no-untyped-def]
    return (
        select(
            Event.id,
            Event.user_id,
            Event.type,
            Event.weight,
            Event.occurred_at,
            func.coalesce(Event.text, Item.text).label("text"),
        )
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(PROCESSABLE)
        .order_by(Event.id)
        .limit(limit)
    )


def _as_pending(rows: list[Row[Any]]) -> list[PendingEvent]:
    return [PendingEvent(**row._asdict()) for row in rows]


def peek_pending(session: Session, limit: int) -> list[PendingEvent]:
    """The next processable events, without locking them."""
    return _as_pending(list(session.execute(_pending_query(limit)).all()))


def claim_pending(session: Session, limit: int) -> list[PendingEvent]:
    """Lock the next processable events; other workers skip them (PostgreSQL SKIP LOCKED)."""
    query = _pending_query(limit).with_for_update(of=Event, skip_locked=True)
    return _as_pending(list(session.execute(query).all()))


def mark_applied(session: Session, event_ids: list[int], *, now: datetime) -> None:
    for start in range(0, len(event_ids), 1000):
        session.execute(
            update(Event)
            .where(Event.id.in_(event_ids[start : start + 1000]))
            .values(applied_at=now)
        )


def lock_profiles(
    session: Session, user_ids: list[str], *, model_id: str, placeholder: dict[str, Any]
) -> dict[str, UserProfile]:
    """Create missing profiles, then lock all of them, in user_id order (no deadlocks)."""
    ordered = sorted(set(user_ids))
    session.execute(
        dialect_insert(session, UserProfile).on_conflict_do_nothing(index_elements=["user_id"]),
        [{"user_id": u, "model_id": model_id, **placeholder} for u in ordered],
    )
    profiles = session.scalars(
        select(UserProfile)
        .where(UserProfile.user_id.in_(ordered))
        .order_by(UserProfile.user_id)
        .with_for_update()
    ).all()
    return {p.user_id: p for p in profiles}


@dataclass(frozen=True)
class QuerySnapshot:
    profile: Row[Any] | None  # event_count, vector_sum, last_event_at, updated_at
    pending_events: int
    model_version: int | None


def query_snapshot(session: Session, user_id: str) -> QuerySnapshot:
    """What a cluster query needs, in one round trip: the profile, the user's unapplied events
    and the latest committed model version."""
    pending = (
        select(func.count())
        .where(Event.user_id == user_id, Event.applied_at.is_(None))
        .scalar_subquery()
    )
    latest = select(func.max(ModelCheckpoint.version)).scalar_subquery()
    row = session.execute(
        select(
            pending.label("pending"),
            latest.label("latest"),
            UserProfile.event_count,
            UserProfile.vector_sum,
            UserProfile.last_event_at,
            UserProfile.updated_at,
        ).where(UserProfile.user_id == user_id)
    ).first()
    if row is None:  # no profile (yet): the rarer path costs a second statement
        counts = session.execute(select(pending, latest)).one()
        return QuerySnapshot(profile=None, pending_events=counts[0], model_version=counts[1])
    return QuerySnapshot(profile=row, pending_events=row.pending, model_version=row.latest)


def get(session: Session, user_id: str) -> UserProfile | None:
    return session.get(UserProfile, user_id)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(UserProfile)) or 0


def delete_user(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(UserProfile).where(UserProfile.user_id == user_id)))
