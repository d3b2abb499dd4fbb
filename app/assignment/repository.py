"""All SQL about assignments: each user's current cluster, and the changes of it (the user's
history and the change feed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.orm import Session

from app.db.models import ClusterAssignment, UserAssignment
from app.db.session import dialect_insert, in_chunks, rowcount


def current_assignments(session: Session, user_ids: list[str]) -> dict[str, tuple[int, int]]:
    """user_id -> (current cluster id, its model version), for those of `user_ids` that have
    one."""
    found: dict[str, tuple[int, int]] = {}
    for chunk in in_chunks(user_ids):
        query = select(
            UserAssignment.user_id, UserAssignment.cluster_id, UserAssignment.model_version
        ).where(UserAssignment.user_id.in_(chunk))
        found.update(
            (user, (cluster, version)) for user, cluster, version in session.execute(query).tuples()
        )
    return found


def upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Set these users' current assignments (user_id, cluster_id, model_version, distance,
    assigned_at)."""
    if not rows:
        return
    stmt = dialect_insert(session, UserAssignment)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            name: stmt.excluded[name]
            for name in ("cluster_id", "model_version", "distance", "assigned_at")
        },
    )
    session.execute(stmt, rows)


CHANGES_LOCK = 0x6163_7400  # "act": the advisory lock that orders writers of changes


def lock_changes(session: Session) -> None:
    """Hold the change feed's write lock until this transaction ends. PostgreSQL hands ids to
    concurrent transactions that may commit in the other order; writers that take this lock
    before their first insert commit their ids in order, so a reader polling `id > cursor`
    never sees a later id before an earlier one. (SQLite has one writer at a time anyway.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CHANGES_LOCK)))


def add_changes(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        lock_changes(session)
        session.execute(insert(ClusterAssignment), rows)


def prune_changes(session: Session, *, before: datetime) -> int:
    """Delete the changes recorded before `before` (the feed's retention), except the newest
    change: it keeps the feed's position known, so that an expired cursor can be told apart."""
    newest = select(func.max(ClusterAssignment.id)).scalar_subquery()
    return rowcount(
        session.execute(
            delete(ClusterAssignment).where(
                ClusterAssignment.assigned_at < before, ClusterAssignment.id < newest
            )
        )
    )


def changes(session: Session, *, after: int, limit: int) -> list[ClusterAssignment]:
    """The next `limit` changes with an id above `after`, in id order."""
    query = (
        select(ClusterAssignment)
        .where(ClusterAssignment.id > after)
        .order_by(ClusterAssignment.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def change_id_range(session: Session) -> tuple[int | None, int | None]:
    """The oldest and the newest change id kept (None, None when there is none)."""
    row = session.execute(
        select(func.min(ClusterAssignment.id), func.max(ClusterAssignment.id))
    ).one()
    return row[0], row[1]


def user_changes(session: Session, user_id: str) -> list[ClusterAssignment]:
    return list(
        session.scalars(
            select(ClusterAssignment)
            .where(ClusterAssignment.user_id == user_id)
            .order_by(ClusterAssignment.id)
        )
    )


def members(session: Session, *, cluster_id: int, after: str | None, limit: int) -> list[Row[Any]]:
    """A keyset page of a cluster's current members in user_id order (user_id, model_version,
    distance, assigned_at)."""
    query = select(
        UserAssignment.user_id,
        UserAssignment.model_version,
        UserAssignment.distance,
        UserAssignment.assigned_at,
    ).where(UserAssignment.cluster_id == cluster_id)
    if after is not None:
        query = query.where(UserAssignment.user_id > after)
    return list(session.execute(query.order_by(UserAssignment.user_id).limit(limit)))


def stream_all(session: Session, *, batch: int) -> Iterator[tuple[str, int, int, float, datetime]]:
    """Every current assignment in user_id order, fetched `batch` rows at a time (a server-side
    cursor on PostgreSQL): memory stays bounded however many users there are."""
    query = select(
        UserAssignment.user_id,
        UserAssignment.cluster_id,
        UserAssignment.model_version,
        UserAssignment.distance,
        UserAssignment.assigned_at,
    ).order_by(UserAssignment.user_id)
    yield from session.execute(query, execution_options={"yield_per": batch}).tuples()


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(UserAssignment)) or 0


def delete_user(session: Session, user_id: str) -> tuple[int, int]:
    """Erase the user's current assignment and changes; (assignments, changes) deleted."""
    current = session.execute(delete(UserAssignment).where(UserAssignment.user_id == user_id))
    history = session.execute(delete(ClusterAssignment).where(ClusterAssignment.user_id == user_id))
    return rowcount(current), rowcount(history)


def all_clusters(session: Session) -> Iterator[tuple[str, int]]:
    """(user_id, cluster_id) of every current assignment, fetched in batches."""
    query = select(UserAssignment.user_id, UserAssignment.cluster_id)
    yield from session.execute(query, execution_options={"yield_per": 10_000}).tuples()
