"""All SQL about the item catalogue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Item
from app.db.session import dialect_insert


def upsert(session: Session, items: dict[str, str], *, now: datetime) -> int:
    """Insert or replace item texts in one statement."""
    if not items:
        return 0
    stmt = dialect_insert(session, Item)
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id"],
        set_={"text": stmt.excluded.text, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt, [{"item_id": k, "text": v, "updated_at": now} for k, v in items.items()])
    return len(items)


def texts(session: Session, item_ids: list[str]) -> dict[str, str]:
    if not item_ids:
        return {}
    rows = session.execute(select(Item.item_id, Item.text).where(Item.item_id.in_(item_ids)))
    return dict(rows.tuples().all())
