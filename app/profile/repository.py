"""All SQL about user profiles: folding into them, the trainer's reads, and the query's read."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    Row,
    ScalarSelect,
    Select,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from app.db.base import UTCDateTime
from app.db.models import UserProfile
from app.db.session import fetch_rows, in_chunks, one_of, rowcount
from app.event import repository as event_repository


@dataclass(frozen=True)
class LockedProfiles:
    """A batch's profiles as the fold reads them under their row locks, in user_id order;
    an `event_count` of 0 is a profile created for this fold (its sum is empty)."""

    user_ids: list[str]
    sums: list[bytes]
    ref_times: list[float]
    event_counts: list[int]


@dataclass(frozen=True)
class FoldedProfiles:
    """What a fold writes back, row i for `user_ids[i]`."""

    user_ids: list[str]
    sums: np.ndarray  # float64 (n, dim)
    ref_times: np.ndarray  # float64 (n,)
    added: list[int]  # events folded in
    newest: list[datetime]  # the newest of those events' times


def lock_profiles(
    session: Session, user_ids: list[str], *, model_id: str, now: datetime
) -> LockedProfiles:
    """Create missing profiles (empty, and invisible to the trainer: version 0), then lock all
    of them in user_id order (no deadlocks between workers)."""
    ordered = sorted(set(user_ids))
    table = cast(Table, UserProfile.__table__)
    if _is_postgresql(session):
        session.execute(_PG_CREATE, {"ids": ordered, "model_id": model_id, "now": now})
    else:
        session.execute(
            _SQLITE_CREATE, {"ids": json.dumps(ordered), "model_id": model_id, "now": now}
        )
    locked = LockedProfiles([], [], [], [])
    for chunk in in_chunks(ordered):
        query = (
            select(table.c.user_id, table.c.vector_sum, table.c.ref_time, table.c.event_count)
            .where(one_of(session, table.c.user_id, chunk))
            .order_by(table.c.user_id)
            .with_for_update()
        )
        for user_id, vector_sum, ref_time, event_count in session.execute(query):
            locked.user_ids.append(user_id)
            locked.sums.append(vector_sum)
            locked.ref_times.append(ref_time)
            locked.event_counts.append(event_count)
    return locked


def write_folded(session: Session, folded: FoldedProfiles, *, now: datetime) -> None:
    """Store folded profiles (locked by `lock_profiles` in this transaction) in one statement
    per batch: PostgreSQL joins against arrays (`UPDATE ... FROM unnest`, the sums as one
    bytea cut in SQL), SQLite runs one prepared statement over all rows. Counts and times are
    added in SQL; each profile gets a new version, so the trainer sees it."""
    if not folded.user_ids:
        return
    sums = np.ascontiguousarray(folded.sums, dtype="<f8")
    if _is_postgresql(session):
        session.execute(
            _PG_UPDATE,
            {
                "ids": folded.user_ids,
                "sums": sums.tobytes(),
                "width": sums.shape[1] * 8,
                "refs": folded.ref_times.tolist(),
                "added": folded.added,
                "newest": folded.newest,
                "now": now,
            },
        )
        return
    # SQLite: one prepared statement over plain tuples, straight to the driver; SQLAlchemy's
    # per-row parameter processing cost more than the update itself.
    stamp = _sqlite_datetime(session)
    session.connection().exec_driver_sql(
        _SQLITE_UPDATE,
        [
            (row.tobytes(), r, stamp(t), stamp(t), a, stamp(now), u)
            for u, row, r, a, t in zip(
                folded.user_ids,
                sums,
                folded.ref_times.tolist(),
                folded.added,
                folded.newest,
                strict=True,
            )
        ],
    )


def _sqlite_datetime(session: Session) -> Callable[[datetime], Any]:
    """How the column type writes a datetime on this database (SQLite: fixed-width text)."""
    processor = UTCDateTime().bind_processor(session.get_bind().dialect)
    assert processor is not None
    return processor


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
_SQLITE_CREATE = text(
    "INSERT INTO user_profile (user_id, model_id, vector_sum, ref_time, event_count,"
    " last_event_at, updated_at, version, trained_version)"
    " SELECT value, :model_id, x'', 0, 0, :now, :now, 0, 0 FROM json_each(:ids)"
    " WHERE true ON CONFLICT (user_id) DO NOTHING"  # WHERE: SQLite's upsert-after-SELECT rule
).bindparams(bindparam("now", type_=UTCDateTime()))
# max() of two arguments is SQLite's scalar max; the stored text sorts as the times do.
_SQLITE_UPDATE = (
    "UPDATE user_profile SET vector_sum = ?, ref_time = ?,"
    " last_event_at = CASE WHEN event_count = 0 THEN ? ELSE max(last_event_at, ?) END,"
    " event_count = event_count + ?, updated_at = ?, version = version + 1"
    " WHERE user_id = ?"
)
_PG_UPDATE = text(
    "UPDATE user_profile AS p SET"
    " vector_sum = substring(CAST(:sums AS bytea)"
    " FROM CAST((v.i - 1) * :width + 1 AS integer) FOR CAST(:width AS integer)),"
    " ref_time = v.ref_time,"
    " last_event_at = CASE WHEN p.event_count = 0 THEN v.newest"
    " ELSE greatest(p.last_event_at, v.newest) END,"
    " event_count = p.event_count + v.added, updated_at = :now, version = p.version + 1"
    " FROM unnest(CAST(:ids AS text[]), CAST(:refs AS float8[]), CAST(:added AS integer[]),"
    " CAST(:newest AS timestamptz[])) WITH ORDINALITY AS v(user_id, ref_time, added, newest, i)"
    " WHERE p.user_id = v.user_id"
)


def untrained_profiles(session: Session, limit: int) -> list[tuple[str, bytes, int]]:
    """(user_id, vector_sum, version) of profiles changed since the trainer last saw them.
    Read without locks: the trainer fits outside any transaction, and `mark_trained` records
    the version read here, so a profile folded again meanwhile stays untrained."""
    query = (
        select(UserProfile.user_id, UserProfile.vector_sum, UserProfile.version)
        .where(UserProfile.version > UserProfile.trained_version)
        .order_by(UserProfile.user_id)
        .limit(limit)
    )
    return fetch_rows(session, query)


def count_untrained(session: Session) -> int:
    query = select(func.count()).where(UserProfile.version > UserProfile.trained_version)
    return session.scalar(query) or 0


# One statement whatever the step's size: the (user_id, version) pairs travel as two arrays
# (PostgreSQL) or one JSON array (SQLite) and are joined against the primary key.
_MARK_TRAINED_POSTGRESQL = text(
    "UPDATE user_profile AS p SET trained_version = v.version"
    " FROM unnest(CAST(:user_ids AS varchar[]), CAST(:versions AS integer[]))"
    " AS v(user_id, version)"
    " WHERE p.user_id = v.user_id"
    " RETURNING p.user_id"
)
_MARK_TRAINED_SQLITE = text(
    "UPDATE user_profile SET trained_version = json_extract(v.value, '$[1]')"
    " FROM json_each(:pairs) AS v"
    " WHERE user_profile.user_id = json_extract(v.value, '$[0]')"
    " RETURNING user_profile.user_id"
)


def mark_trained(session: Session, versions: dict[str, int]) -> set[str]:
    """Record that the trainer consumed these profiles at the versions it read (user_id ->
    version). A profile folded again since keeps a newer version, so it stays untrained; one
    erased since is gone. Returns the user_ids marked (the profiles that still exist)."""
    if not versions:
        return set()
    if _is_postgresql(session):
        params: dict[str, Any] = {
            "user_ids": list(versions),
            "versions": list(versions.values()),
        }
        result = session.execute(_MARK_TRAINED_POSTGRESQL, params)
    else:
        pairs = json.dumps(list(versions.items()))
        result = session.execute(_MARK_TRAINED_SQLITE, {"pairs": pairs})
    return set(result.scalars())


SYSTEM_SAMPLE_FROM = 100_000  # profiles from which PostgreSQL samples pages, not rows


def sample(session: Session, limit: int) -> list[tuple[str, bytes]]:
    """(user_id, vector_sum) of about `limit` profiles drawn at random (all of them when there
    are fewer), in no particular order. Never sorts the table: PostgreSQL draws whole pages of
    a big table (TABLESAMPLE SYSTEM; a row-level BERNOULLI draw on a small one or when the
    pages came short), SQLite looks up random rowids."""
    postgresql = _is_postgresql(session)
    # Counting a million profiles reads the whole table (seconds, every interval): PostgreSQL's
    # own estimate sets the sampling rate well enough once the table is big.
    estimate = _estimated_rows_postgresql(session) if postgresql else -1
    total = estimate if estimate > 2 * SYSTEM_SAMPLE_FROM else count(session)
    if total <= limit:
        query = select(UserProfile.user_id, UserProfile.vector_sum)
        return list(session.execute(query.where(UserProfile.event_count > 0)).tuples())
    if postgresql:
        return _sample_postgresql(session, limit, total)
    return _sample_sqlite(session, limit)


def _estimated_rows_postgresql(session: Session) -> int:
    """The planner's row estimate of user_profile (-1: never vacuumed or analysed)."""
    query = text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'user_profile'::regclass")
    return int(session.scalar(query) or -1)


def _sample_postgresql(session: Session, limit: int, total: int) -> list[tuple[str, bytes]]:
    # A little over `limit`, then cut at random: a LIMIT would cut the pages at the table's end.
    percent = min(100.0, 100.0 * limit * 1.1 / total)
    rows: list[tuple[str, bytes]] = []
    # SYSTEM draws whole pages: cheapest, and fine-grained enough only on a big table.
    methods = ("SYSTEM", "BERNOULLI") if total >= SYSTEM_SAMPLE_FROM else ("BERNOULLI",)
    for method in methods:  # BERNOULLI: row-level, also when SYSTEM drew too few
        sampled = text(
            f"SELECT user_id, vector_sum FROM user_profile TABLESAMPLE {method} (:percent)"
            " WHERE event_count > 0"
        )
        rows = fetch_rows(session, sampled.bindparams(percent=percent))
        if len(rows) >= limit * 0.9:
            break
    return random.sample(rows, limit) if len(rows) > limit else rows


def _sample_sqlite(session: Session, limit: int) -> list[tuple[str, bytes]]:
    # Random rowids looked up in the table's own B-tree: the cost is the rows drawn, not the
    # table. Erased profiles leave gaps, so a short draw is topped up a few times.
    top = session.scalar(text("SELECT max(rowid) FROM user_profile")) or 0
    drawn: dict[str, bytes] = {}
    for _ in range(4):
        wanted = limit - len(drawn)
        if wanted <= 0:
            break
        rowids = random.sample(range(1, top + 1), min(top, wanted + wanted // 4))
        rows = session.execute(
            text(
                "SELECT user_id, vector_sum FROM user_profile"
                " WHERE rowid IN (SELECT value FROM json_each(:rowids)) AND event_count > 0"
            ),
            {"rowids": json.dumps(rowids)},
        ).tuples()
        drawn.update((user_id, blob) for user_id, blob in rows)
    return list(drawn.items())[:limit]


def page(session: Session, *, after: str | None, limit: int) -> list[tuple[str, bytes]]:
    """The next `limit` profiles in user_id order after `after`: keyset pages, bounded memory."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    if after is not None:
        query = query.where(UserProfile.user_id > after)
    return fetch_rows(session, query.order_by(UserProfile.user_id).limit(limit))


@dataclass(frozen=True)
class QuerySnapshot:
    profile: Row[Any] | None  # event_count, vector_sum, last_event_at, updated_at
    pending_events: int
    quarantined_events: int
    model_version: int | None


def query_snapshot(
    session: Session | Connection, user_id: str, *, model_version: ScalarSelect[Any]
) -> QuerySnapshot:
    """What a cluster query needs, in one round trip: the profile, the user's unapplied events
    (pending and quarantined) and `model_version`, the model domain's subquery for the latest
    committed version (passed in because profiles sit below the model on the data path)."""
    with_profile, without_profile = _snapshot_statements(model_version)
    row = session.execute(with_profile, {"user_id": user_id}).first()
    if row is None:  # no profile (yet): the rarer path costs a second statement
        counts = session.execute(without_profile, {"user_id": user_id}).one()
        return QuerySnapshot(None, counts[0], counts[1], counts[2])
    return QuerySnapshot(row, row.pending, row.quarantined, row.latest)


@functools.cache
def _snapshot_statements(model_version: ScalarSelect[Any]) -> tuple[Select[Any], Select[Any]]:
    """`query_snapshot`'s two statements, built once (per model_version subquery, a constant
    of the model domain): building a select costs more than running it on the hot path."""
    user_id = bindparam("user_id", type_=UserProfile.user_id.type)
    pending = event_repository.user_pending_count(user_id)
    quarantined = event_repository.user_quarantined_count(user_id)
    with_profile = select(
        pending.label("pending"),
        quarantined.label("quarantined"),
        model_version.label("latest"),
        UserProfile.event_count,
        UserProfile.vector_sum,
        UserProfile.last_event_at,
        UserProfile.updated_at,
    ).where(UserProfile.user_id == user_id)
    return with_profile, select(pending, quarantined, model_version)


def get(session: Session, user_id: str) -> UserProfile | None:
    return session.get(UserProfile, user_id)


def count(session: Session | Connection) -> int:
    return session.scalar(select(func.count()).select_from(UserProfile)) or 0


def delete_user(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(UserProfile).where(UserProfile.user_id == user_id)))


def lock_existing(session: Session, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` that still have a profile, share-locked until the transaction ends:
    a concurrent erasure waits, so nothing is written for a user erased meanwhile."""
    found: set[str] = set()
    for chunk in in_chunks(sorted(user_ids)):
        query = select(UserProfile.user_id).where(UserProfile.user_id.in_(chunk))
        found.update(session.scalars(query.with_for_update(read=True)))
    return found
