"""Ingest: turn a validated batch into stored events, idempotently."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.event import repository as event_repository
from app.event.schemas import EventIn, IngestResult


def validation_context(settings: Settings, *, now: datetime) -> dict[str, Any]:
    """What EventIn/EventBatch validation reads besides the body: the configured types, the
    clock (for the future-timestamp check) and the batch limit. The API and the importer
    validate with the same context."""
    return {
        "event_types": settings.event_weights,
        "now": now,
        "max_events": settings.max_events_per_request,
    }


def event_row(event: EventIn, *, now: datetime, event_id: str) -> dict[str, Any]:
    """What is stored for an accepted event."""
    return {
        "event_id": event_id,
        "user_id": event.user_id,
        "type": event.type,
        "item_id": event.item_id,
        "text": event.text,
        "weight": event.weight,
        "occurred_at": event.timestamp or now,
        "received_at": now,
    }


def ingest(
    session: Session, *, events: list[EventIn], now: datetime, bulk: bool = False
) -> IngestResult:
    """Store events with a new event_id; repeats (in this batch or before) are duplicates.
    `bulk`: a large batch in a transaction of its own (the importer's)."""
    return store(session, new_rows(events, now=now), submitted=len(events), bulk=bulk)


def new_rows(events: list[EventIn], *, now: datetime) -> list[dict[str, Any]]:
    """The rows to store, repeats of an event_id within the batch left out. Built before the
    write begins: on SQLite the write lock is not held while Python builds a thousand dicts."""
    rows, seen = [], set()
    for event in events:
        event_id = event.event_id or uuid.uuid4().hex
        if event_id in seen:
            continue
        seen.add(event_id)
        rows.append(event_row(event, now=now, event_id=event_id))
    return rows


def store(
    session: Session, rows: list[dict[str, Any]], *, submitted: int, bulk: bool = False
) -> IngestResult:
    """Insert `new_rows`' rows; the `submitted` events that are not new are duplicates."""
    accepted = event_repository.insert_new(session, rows, bulk=bulk)
    return IngestResult(accepted=accepted, duplicates=submitted - accepted)
