"""Catalogue upserts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.item import repository as item_repository
from app.item.schemas import ItemIn, UpsertResult


def upsert(session: Session, *, items: list[ItemIn], now: datetime) -> UpsertResult:
    """Store item texts; within one batch the last text for an item_id wins."""
    texts = {item.item_id: item.text for item in items}
    return UpsertResult(upserted=item_repository.upsert(session, texts, now=now))
