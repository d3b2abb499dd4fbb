"""All SQL about user profiles: folding into them, the trainer's reads, and the query's read."""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    ScalarSelect,
    Select,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from app.db.models import UserProfile
from app.db.session import dialect_insert, fetch_rows, rowcount
from app.event import repository as event_repository


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
    if session.get_bind().dialect.name == "postgresql":
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
    total = count(session)
    if total <= limit:
        query = select(UserProfile.user_id, UserProfile.vector_sum)
        return list(session.execute(query.where(UserProfile.event_count > 0)).tuples())
    if session.get_bind().dialect.name == "postgresql":
        return _sample_postgresql(session, limit, total)
    return _sample_sqlite(session, limit)


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
