"""All SQL about model checkpoints, quality snapshots and assignment history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import ClusterMetrics, ModelCheckpoint, UserCluster, UserProfile
from app.db.session import rowcount


def latest_checkpoint(session: Session) -> ModelCheckpoint | None:
    return session.scalars(
        select(ModelCheckpoint).order_by(ModelCheckpoint.version.desc()).limit(1)
    ).first()


def latest_version(session: Session) -> int | None:
    return session.scalar(select(func.max(ModelCheckpoint.version)))


def get_checkpoint(session: Session, version: int) -> ModelCheckpoint | None:
    return session.get(ModelCheckpoint, version)


def list_checkpoints(session: Session) -> list[ModelCheckpoint]:
    return list(session.scalars(select(ModelCheckpoint).order_by(ModelCheckpoint.version)))


def add_checkpoint(session: Session, checkpoint: ModelCheckpoint, *, keep: int) -> None:
    """Insert a new version (the primary key refuses a second writer of the same version)."""
    session.add(checkpoint)
    session.flush()
    session.execute(
        delete(ModelCheckpoint).where(ModelCheckpoint.version <= checkpoint.version - keep)
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
    for start in range(0, len(user_ids), 1000):
        session.execute(
            update(UserProfile)
            .where(UserProfile.user_id.in_(user_ids[start : start + 1000]))
            .values(trained_version=UserProfile.version)
            .execution_options(synchronize_session=False)
        )


def add_history(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(UserCluster), rows)


def user_history(session: Session, user_id: str) -> list[UserCluster]:
    return list(
        session.scalars(
            select(UserCluster).where(UserCluster.user_id == user_id).order_by(UserCluster.id)
        )
    )


def delete_user_history(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(UserCluster).where(UserCluster.user_id == user_id)))


def add_metrics(session: Session, snapshot: ClusterMetrics) -> None:
    session.add(snapshot)


def latest_metrics(session: Session) -> ClusterMetrics | None:
    return session.scalars(
        select(ClusterMetrics).order_by(ClusterMetrics.id.desc()).limit(1)
    ).first()


def metrics_history(session: Session, limit: int) -> list[ClusterMetrics]:
    rows = session.scalars(select(ClusterMetrics).order_by(ClusterMetrics.id.desc()).limit(limit))
    return list(reversed(list(rows)))


def profile_sample(session: Session, limit: int) -> list[tuple[str, bytes]]:
    """Up to `limit` profiles (all of them when there are fewer), for evaluation."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    total = session.scalar(select(func.count()).select_from(UserProfile)) or 0
    if total > limit:
        query = query.order_by(func.random()).limit(limit)
    return list(session.execute(query).tuples())


def profile_page(session: Session, *, after: str | None, limit: int) -> list[tuple[str, bytes]]:
    """The next `limit` profiles in user_id order after `after`: keyset pages, bounded memory."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    if after is not None:
        query = query.where(UserProfile.user_id > after)
    return list(session.execute(query.order_by(UserProfile.user_id).limit(limit)).tuples())
