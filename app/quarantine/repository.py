"""All SQL about quarantined events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import Event, QuarantinedEvent
from app.db.session import dialect_insert, rowcount


def add(session: Session, rows: list[dict[str, Any]]) -> None:
    """Quarantine events ({id, user_id, reason, quarantined_at}); one already there stays."""
    if rows:
        session.execute(
            dialect_insert(session, QuarantinedEvent).on_conflict_do_nothing(index_elements=["id"]),
            rows,
        )


def page(session: Session, *, after: int | None, limit: int) -> list[Any]:
    """Quarantined events in id order after `after`, with what identifies them to a client."""
    query = (
        select(
            QuarantinedEvent.id,
            Event.event_id,
            QuarantinedEvent.user_id,
            Event.type,
            Event.item_id,
            Event.occurred_at,
            QuarantinedEvent.reason,
            QuarantinedEvent.quarantined_at,
        )
        .join(Event, Event.id == QuarantinedEvent.id)
        .order_by(QuarantinedEvent.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(QuarantinedEvent.id > after)
    return list(session.execute(query).all())


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(QuarantinedEvent)) or 0


def oldest(session: Session) -> datetime | None:
    return session.scalar(select(func.min(QuarantinedEvent.quarantined_at)))


def release(session: Session, ids: list[int] | None) -> int:
    """Put events back in the work queue (all of them with `ids=None`); returns how many."""
    stmt = delete(QuarantinedEvent)
    if ids is not None:
        stmt = stmt.where(QuarantinedEvent.id.in_(ids))
    return rowcount(session.execute(stmt))


def drop(session: Session, ids: list[int]) -> int:
    """Delete quarantined events for good (the event rows too); returns how many."""
    quarantined = select(QuarantinedEvent.id).where(QuarantinedEvent.id.in_(ids))
    session.execute(delete(Event).where(Event.id.in_(quarantined)))
    return rowcount(session.execute(delete(QuarantinedEvent).where(QuarantinedEvent.id.in_(ids))))


def delete_user(session: Session, user_id: str) -> int:
    return rowcount(
        session.execute(delete(QuarantinedEvent).where(QuarantinedEvent.user_id == user_id))
    )
