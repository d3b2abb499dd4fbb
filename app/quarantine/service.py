"""Listing, retrying and dropping quarantined events; the worker adds to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.quarantine import repository as quarantine_repository
from app.quarantine.schemas import Dropped, QuarantinedEventOut, QuarantinePage, Released

MAX_REASON = 500


def quarantine(
    session: Session, *, events: list[tuple[int, str]], reason: str, now: datetime
) -> None:
    """Set (id, user_id) events aside with the reason they could not be folded."""
    quarantine_repository.add(
        session,
        [
            {"id": i, "user_id": u, "reason": reason[:MAX_REASON], "quarantined_at": now}
            for i, u in events
        ],
    )


def list_page(session: Session, *, after: int | None, limit: int) -> QuarantinePage:
    rows = quarantine_repository.page(session, after=after, limit=limit)
    events = [QuarantinedEventOut.model_validate(row._asdict()) for row in rows]
    return QuarantinePage(events=events, next_after=events[-1].id if len(events) == limit else None)


def retry(session: Session, *, ids: list[int] | None) -> Released:
    """Back into the work queue: the next worker step folds them (or quarantines them again)."""
    released = quarantine_repository.release(session, ids)
    if ids is not None and released < len(set(ids)):
        raise NotFound("no quarantined event with that id")
    return Released(released=released)


def drop(session: Session, *, ids: list[int]) -> Dropped:
    dropped = quarantine_repository.drop(session, ids)
    if dropped < len(set(ids)):
        raise NotFound("no quarantined event with that id")
    return Dropped(dropped=dropped)
