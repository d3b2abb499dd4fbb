"""Answers about quarantined events."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class QuarantinedEventOut(BaseModel):
    id: int  # the service's own event number: what retry and drop take
    event_id: str  # the client's idempotency key
    user_id: str
    type: str
    item_id: str | None
    occurred_at: datetime
    reason: str
    quarantined_at: datetime


class QuarantinePage(BaseModel):
    events: list[QuarantinedEventOut]
    next_after: int | None  # pass as `after` for the next page; null on the last one


class Released(BaseModel):
    released: int  # events back in the work queue


class Dropped(BaseModel):
    dropped: int  # events deleted for good
