"""All SQL about events: ingest, the work queue the profile stage drains, and counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ScalarSelect,
    Select,
    Subquery,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Event, Item, QuarantinedEvent
from app.db.session import dialect_insert, in_chunks, one_of, rowcount

# Unapplied events whose text is known: their own, or their item's (with an outer join on
# Item), and that are not quarantined. The others wait for the item's text and are counted as
# waiting_for_item. (The quarantine is small: the anti-join costs a probe of its primary key.)
QUARANTINED = exists().where(QuarantinedEvent.id == Event.id)
PROCESSABLE = and_(
    Event.applied_at.is_(None),
    or_(Event.text.is_not(None), Item.text.is_not(None)),
    ~QUARANTINED,
)


def insert_new(session: Session, rows: list[dict[str, Any]], *, bulk: bool = False) -> int:
    """Insert rows whose event_id is not stored yet, in one statement; returns how many were new.

    The new rows are counted from the statement's row count, not with `RETURNING`: returning
    ids makes SQLAlchemy render one huge multi-row `VALUES` statement instead of streaming the
    rows. PostgreSQL gets one `INSERT ... SELECT FROM unnest(arrays)`: one statement and one
    round trip per batch, whatever its size; SQLite one prepared statement run per row.
    `bulk` (the importer's large batches, in a transaction of their own): PostgreSQL's COPY."""
    if not rows:
        return 0
    conn = session.connection()  # Core, not the ORM: no per-row bookkeeping for a bulk insert
    if conn.dialect.name == "postgresql":
        if bulk:
            return _copy_new(session, rows)
        columns = {name: [row[name] for row in rows] for name in _EVENT_COLUMNS}
        return rowcount(conn.execute(_PG_INSERT_EVENTS, columns))
    stmt = dialect_insert(session, Event).on_conflict_do_nothing(index_elements=["event_id"])
    return rowcount(conn.execute(stmt, rows))


def insert_new_returning(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows whose event_id is not stored yet, in one statement; returns the event_ids
    it stored (a group commit shares them out among its requests). For small groups: the
    statement names every value."""
    if not rows:
        return set()
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in _EVENT_COLUMNS}
        return set(conn.execute(_PG_INSERT_EVENTS_RETURNING, columns).scalars())
    stmt = (
        dialect_insert(session, Event)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Event.event_id)
    )
    return set(conn.execute(stmt).scalars())


def _copy_new(session: Session, rows: list[dict[str, Any]]) -> int:
    """COPY, PostgreSQL's bulk-load protocol: the rows stream in binary into a temporary table
    (emptied at commit, so this needs a transaction), then one INSERT ... SELECT skips the
    stored ones."""
    session.execute(_PG_CREATE_STAGE)
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:  # type: ignore[attr-defined]
        names = ", ".join(_EVENT_COLUMNS)
        with cursor.copy(f"COPY event_stage ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(_EVENT_COLUMNS.values()))
            for row in rows:
                copy.write_row([row[name] for name in _EVENT_COLUMNS])
    return rowcount(session.execute(_PG_INSERT_STAGED))


_EVENT_COLUMNS = {
    "event_id": "text",
    "user_id": "text",
    "type": "text",
    "item_id": "text",
    "text": "text",
    "weight": "float8",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
}
_PG_INSERT_EVENTS = text(
    f"INSERT INTO event ({', '.join(_EVENT_COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _EVENT_COLUMNS.items())})"
    " ON CONFLICT (event_id) DO NOTHING"
)
_PG_INSERT_EVENTS_RETURNING = text(f"{_PG_INSERT_EVENTS.text} RETURNING event_id")
_PG_CREATE_STAGE = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS event_stage"
    f" ({', '.join(f'{c} {t}' for c, t in _EVENT_COLUMNS.items())}) ON COMMIT DELETE ROWS"
)
_PG_INSERT_STAGED = text(
    f"INSERT INTO event ({', '.join(_EVENT_COLUMNS)})"
    f" SELECT {', '.join(_EVENT_COLUMNS)} FROM event_stage"
    " ON CONFLICT (event_id) DO NOTHING"
)


_PendingQuery = Select[int, str, str, float | None, datetime, str]


@dataclass(frozen=True)
class PendingEvent:
    id: int
    user_id: str
    type: str
    weight: float | None
    occurred_at: datetime
    text: str  # the event's own text, else its item's


def _pending_query(limit: int | None) -> _PendingQuery:
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


def _run(session: Session, query: _PendingQuery) -> list[PendingEvent]:
    return [PendingEvent(**row._asdict()) for row in session.execute(query)]


def peek_pending(
    session: Session, limit: int, *, coalesce: int = 1, after: int | None = None
) -> list[PendingEvent]:
    """The next processable events, without locking them: the oldest `limit` (with an id above
    `after`, if given), and while more wait, other pending events of the same users, up to
    `limit * coalesce` in all. Profiles are order-free, so a backlog is folded with one
    profile write per user, not per event: at a million users each event of a batch is
    another user's, and that write is the cost."""
    first = _pending_query(limit)
    oldest = _run(session, first if after is None else first.where(Event.id > after))
    room = limit * (coalesce - 1)
    if len(oldest) < limit or room <= 0:  # nothing waits beyond this batch
        return oldest
    # Pending events of these users in no order, read by the index of pending events by user
    # (ix_event_unapplied_user_id). No id range in the query: PostgreSQL would combine it with
    # the whole queue's index; the batch's own events are dropped here instead.
    taken = {e.id for e in oldest}
    of_users = _pending_query(None).order_by(None)
    users = sorted({e.user_id for e in oldest})
    for chunk in in_chunks(users):
        if room <= 0:
            break
        query = of_users.where(one_of(session, Event.user_id, chunk)).limit(room + len(taken))
        more = [e for e in _run(session, query) if e.id not in taken][:room]
        oldest += more
        room -= len(more)
    return oldest


def claim_ids(session: Session, ids: list[int]) -> dict[int, str]:
    """Lock those of these events that are still processable (others may have applied them
    since); id -> the text to embed now (an item's text may have changed since a peek)."""
    query = (
        select(Event.id, func.coalesce(Event.text, Item.text))
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(PROCESSABLE)
        .order_by(Event.id)
        .with_for_update(of=Event, skip_locked=True)
    )
    claimed: dict[int, str] = {}
    for chunk in in_chunks(ids):
        rows = session.execute(query.where(one_of(session, Event.id, chunk))).tuples()
        claimed.update((event_id, event_text) for event_id, event_text in rows)
    return claimed


def mark_applied(session: Session, event_ids: list[int], *, now: datetime) -> None:
    for chunk in in_chunks(event_ids):
        session.connection().execute(  # Core: no ORM session synchronisation to do
            update(Event).where(one_of(session, Event.id, chunk)).values(applied_at=now)
        )


def recent_applied(session: Session, limit: int) -> list[tuple[str, str | None, str | None]]:
    """(user_id, item_id, text) of the newest `limit` applied events, newest first; the text is
    the event's own, else its item's."""
    query = (
        select(Event.user_id, Event.item_id, func.coalesce(Event.text, Item.text))
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(Event.applied_at.is_not(None))
        .order_by(Event.id.desc())
        .limit(limit)
    )
    return list(session.execute(query).tuples())


def user_pending_count(user_id: str | BindParameter[str]) -> ScalarSelect[int]:
    """The user's unapplied events that are not quarantined, as a subquery to embed in another
    domain's one-trip query."""
    return (
        select(func.count())
        .where(Event.user_id == user_id, Event.applied_at.is_(None), ~QUARANTINED)
        .scalar_subquery()
    )


def user_quarantined_count(user_id: str | BindParameter[str]) -> ScalarSelect[int]:
    """The user's quarantined events, as a subquery like `user_pending_count`."""
    return (
        select(func.count())
        .where(Event.user_id == user_id, Event.applied_at.is_(None), QUARANTINED)
        .scalar_subquery()
    )


def pending_counts(session: Session) -> dict[str, int]:
    """Received, applied, pending (the part that waits for its item's text among them), and
    quarantined: received = applied + pending + quarantined."""
    received = session.scalar(select(func.count()).select_from(Event)) or 0
    unapplied = session.scalar(select(func.count()).where(Event.applied_at.is_(None))) or 0
    quarantined = session.scalar(select(func.count()).select_from(QuarantinedEvent)) or 0
    waiting = (
        session.scalar(
            select(func.count())
            .select_from(Event)
            .outerjoin(Item, Item.item_id == Event.item_id)
            .where(Event.applied_at.is_(None), Event.text.is_(None), Item.item_id.is_(None))
        )
        or 0
    )
    return {
        "received": received,
        "applied": received - unapplied,
        "pending": unapplied - quarantined,
        "waiting_for_item": waiting,
        "quarantined": quarantined,
    }


def oldest_processable_received_at(session: Session) -> datetime | None:
    """When the oldest unapplied event that is not waiting for its item arrived."""
    return session.scalar(
        select(func.min(Event.received_at))
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(PROCESSABLE)
    )


def user_has_events(session: Session, user_id: str) -> bool:
    return session.scalar(select(Event.id).where(Event.user_id == user_id).limit(1)) is not None


def delete_user_events(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(Event).where(Event.user_id == user_id)))


def insert_probe(session: Session) -> None:
    """Insert one event with a text of a few pages, for a caller that rolls back: proves that
    ingest can write now (the schema is there, the database takes writes, the disk has room)."""
    now = utcnow()
    session.execute(
        insert(Event).values(
            event_id=f"readiness-probe-{uuid.uuid4().hex}",
            user_id="readiness-probe",
            type="probe",
            text="x" * 16_384,
            occurred_at=now,
            received_at=now,
        )
    )


def user_items(session: Session, user_id: str) -> set[str]:
    """Every item the user has an event for (applied or not): what recommendations skip."""
    query = select(Event.item_id).where(Event.user_id == user_id, Event.item_id.is_not(None))
    return {item for item in session.scalars(query.distinct()) if item is not None}


def user_applied_events(
    session: Session, user_id: str, *, limit: int
) -> list[tuple[str, str | None, str, float | None, datetime, str | None]]:
    """(event_id, item_id, type, weight, occurred_at, text) of the user's newest `limit` applied
    events (by time, then event_id: a function of the set of events, not of arrival order)."""
    query = (
        select(
            Event.event_id,
            Event.item_id,
            Event.type,
            Event.weight,
            Event.occurred_at,
            func.coalesce(Event.text, Item.text),
        )
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(Event.user_id == user_id, Event.applied_at.is_not(None))
        .order_by(Event.occurred_at.desc(), Event.event_id)
        .limit(limit)
    )
    return list(session.execute(query).tuples())


def _engagement_window(limit: int) -> Subquery:
    """The newest `limit` applied events that name an item: what cluster rankings count."""
    return (
        select(Event.user_id, Event.item_id, Event.type, Event.weight, Event.occurred_at)
        .where(Event.applied_at.is_not(None), Event.item_id.is_not(None))
        .order_by(Event.id.desc())
        .limit(limit)
        .subquery()
    )


def newest_engagements(session: Session, *, limit: int) -> dict[str, datetime]:
    """user_id -> the time of the user's newest event in the window (`_engagement_window`)."""
    window = _engagement_window(limit)
    query = select(window.c.user_id, func.max(window.c.occurred_at)).group_by(window.c.user_id)
    return dict(session.execute(query).tuples().all())


def item_engagements(
    session: Session, *, limit: int, batch: int = 10_000
) -> Iterator[tuple[str, str, str, float | None, datetime]]:
    """(user_id, item_id, type, weight, occurred_at) of the events in the window, streamed
    `batch` rows at a time (a server-side cursor on PostgreSQL): a million events are never
    held at once."""
    window = _engagement_window(limit)
    query = select(
        window.c.user_id, window.c.item_id, window.c.type, window.c.weight, window.c.occurred_at
    )
    yield from session.execute(query, execution_options={"yield_per": batch}).tuples()  # type: ignore[misc]
