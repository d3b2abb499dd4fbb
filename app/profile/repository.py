"""All SQL about user profiles: folding into them, the trainer's reads, and the query's read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, ScalarSelect, Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from app.db.models import UserProfile
from app.db.session import dialect_insert, in_chunks, rowcount
from app.event import repository as event_repository


@dataclass(frozen=True)
class Locked:
    """A profile as the fold reads it under its row lock; `event_count` 0 is a new profile."""

    user_id: str
    vector_sum: bytes
    ref_time: float
    event_count: int
    last_event_at: datetime


@dataclass(frozen=True)
class Folded:
    user_id: str
    vector_sum: bytes
    ref_time: float
    event_count: int
    last_event_at: datetime


def lock_profiles(
    session: Session, user_ids: list[str], *, model_id: str, now: datetime
) -> list[Locked]:
    """Create missing profiles (empty, invisible to the trainer until folded into in the same
    transaction), then lock all of them in user_id order (no deadlocks); sorted by user_id."""
    ordered = sorted(set(user_ids))
    if _is_postgresql(session):
        session.execute(_PG_CREATE, {"ids": ordered, "model_id": model_id, "now": now})
    else:
        session.execute(
            dialect_insert(session, UserProfile).on_conflict_do_nothing(index_elements=["user_id"]),
            [{"user_id": u, "model_id": model_id, **_empty(now)} for u in ordered],
        )
    table = cast(Table, UserProfile.__table__)
    locked: list[Locked] = []
    for chunk in in_chunks(ordered):
        query = (
            select(
                table.c.user_id,
                table.c.vector_sum,
                table.c.ref_time,
                table.c.event_count,
                table.c.last_event_at,
            )
            .where(table.c.user_id.in_(chunk))
            .order_by(table.c.user_id)
            .with_for_update()
        )
        locked.extend(Locked(*row) for row in session.execute(query))
    return locked


def write_folded(session: Session, folded: list[Folded], *, now: datetime) -> None:
    """Store folded profiles (locked by `lock_profiles` in this transaction) in one statement
    per batch: PostgreSQL joins against arrays (`UPDATE ... FROM unnest`), SQLite runs one
    prepared statement over all rows. Each gets a new version, so the trainer sees it."""
    if not folded:
        return
    if _is_postgresql(session):
        session.execute(
            _PG_UPDATE,
            {
                "ids": [f.user_id for f in folded],
                "sums": [f.vector_sum for f in folded],
                "refs": [f.ref_time for f in folded],
                "counts": [f.event_count for f in folded],
                "lasts": [f.last_event_at for f in folded],
                "now": now,
            },
        )
        return
    table = cast(Table, UserProfile.__table__)
    stmt = (
        update(table)
        .where(table.c.user_id == bindparam("b_user_id"))
        .values(
            vector_sum=bindparam("b_sum"),
            ref_time=bindparam("b_ref"),
            event_count=bindparam("b_count"),
            last_event_at=bindparam("b_last"),
            updated_at=now,
            version=table.c.version + 1,
        )
    )
    session.execute(
        stmt,
        [
            {
                "b_user_id": f.user_id,
                "b_sum": f.vector_sum,
                "b_ref": f.ref_time,
                "b_count": f.event_count,
                "b_last": f.last_event_at,
            }
            for f in folded
        ],
    )


def _empty(now: datetime) -> dict[str, Any]:
    # No sum yet (event_count 0 says so), version 0 = trained_version: the trainer skips it.
    return {
        "vector_sum": b"",
        "ref_time": 0.0,
        "event_count": 0,
        "last_event_at": now,
        "updated_at": now,
        "version": 0,
        "trained_version": 0,
    }


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# One statement per batch on PostgreSQL, whatever its size: arrays in, rows out.
_PG_CREATE = text(
    "INSERT INTO user_profile (user_id, model_id, vector_sum, ref_time, event_count,"
    " last_event_at, updated_at, version, trained_version)"
    " SELECT u, :model_id, ''::bytea, 0, 0, :now, :now, 0, 0"
    " FROM unnest(CAST(:ids AS text[])) AS u"
    " ON CONFLICT (user_id) DO NOTHING"
)
_PG_UPDATE = text(
    "UPDATE user_profile AS p SET vector_sum = v.vector_sum, ref_time = v.ref_time,"
    " event_count = v.event_count, last_event_at = v.last_event_at, updated_at = :now,"
    " version = p.version + 1"
    " FROM unnest(CAST(:ids AS text[]), CAST(:sums AS bytea[]), CAST(:refs AS float8[]),"
    " CAST(:counts AS integer[]), CAST(:lasts AS timestamptz[]))"
    " AS v(user_id, vector_sum, ref_time, event_count, last_event_at)"
    " WHERE p.user_id = v.user_id"
)


def untrained_profiles(session: Session, limit: int) -> list[tuple[str, bytes, int]]:
    """(user_id, vector_sum, version) of profiles changed since the trainer last saw them."""
    query = (
        select(UserProfile.user_id, UserProfile.vector_sum, UserProfile.version)
        .where(UserProfile.version > UserProfile.trained_version)
        .order_by(UserProfile.user_id)
        .limit(limit)
        # A profile a worker is folding right now is skipped; it is picked up next step.
        .with_for_update(skip_locked=True)
    )
    return list(session.execute(query).tuples())


def count_untrained(session: Session) -> int:
    query = select(func.count()).where(UserProfile.version > UserProfile.trained_version)
    return session.scalar(query) or 0


def mark_trained(session: Session, user_ids: list[str]) -> None:
    """Record that the trainer consumed these profiles as they are now. Correct because the
    step read them under its row locks (`untrained_profiles`), so no fold has changed them."""
    for chunk in in_chunks(user_ids):
        session.execute(
            update(UserProfile)
            .where(UserProfile.user_id.in_(chunk))
            .values(trained_version=UserProfile.version)
            .execution_options(synchronize_session=False)
        )


def sample(session: Session, limit: int) -> list[tuple[str, bytes]]:
    """(user_id, vector_sum) of up to `limit` profiles (all of them when there are fewer)."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    total = session.scalar(select(func.count()).select_from(UserProfile)) or 0
    if total > limit:
        query = query.order_by(func.random()).limit(limit)
    return list(session.execute(query).tuples())


def page(session: Session, *, after: str | None, limit: int) -> list[tuple[str, bytes]]:
    """The next `limit` profiles in user_id order after `after`: keyset pages, bounded memory."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    if after is not None:
        query = query.where(UserProfile.user_id > after)
    return list(session.execute(query.order_by(UserProfile.user_id).limit(limit)).tuples())


@dataclass(frozen=True)
class QuerySnapshot:
    profile: Row[Any] | None  # event_count, vector_sum, last_event_at, updated_at
    pending_events: int
    quarantined_events: int
    model_version: int | None


def query_snapshot(
    session: Session, user_id: str, *, model_version: ScalarSelect[Any]
) -> QuerySnapshot:
    """What a cluster query needs, in one round trip: the profile, the user's unapplied events
    (pending and quarantined) and `model_version`, the model domain's subquery for the latest
    committed version (passed in because profiles sit below the model on the data path)."""
    pending = event_repository.user_pending_count(user_id)
    quarantined = event_repository.user_quarantined_count(user_id)
    row = session.execute(
        select(
            pending.label("pending"),
            quarantined.label("quarantined"),
            model_version.label("latest"),
            UserProfile.event_count,
            UserProfile.vector_sum,
            UserProfile.last_event_at,
            UserProfile.updated_at,
        ).where(UserProfile.user_id == user_id)
    ).first()
    if row is None:  # no profile (yet): the rarer path costs a second statement
        counts = session.execute(select(pending, quarantined, model_version)).one()
        return QuerySnapshot(None, counts[0], counts[1], counts[2])
    return QuerySnapshot(row, row.pending, row.quarantined, row.latest)


def get(session: Session, user_id: str) -> UserProfile | None:
    return session.get(UserProfile, user_id)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(UserProfile)) or 0


def delete_user(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(UserProfile).where(UserProfile.user_id == user_id)))
