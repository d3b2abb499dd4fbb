"""All SQL about model checkpoints, quality snapshots and assignment history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, delete, func, insert, select
from sqlalchemy.orm import Session

from app.clustering.codec import CheckpointState
from app.db.models import ClusterAssignment, ClusterMetrics, ModelCheckpoint
from app.db.session import rowcount


def latest_checkpoint(session: Session) -> ModelCheckpoint | None:
    return session.scalars(
        select(ModelCheckpoint).order_by(ModelCheckpoint.version.desc()).limit(1)
    ).first()


def latest_version_query() -> ScalarSelect[Any]:
    """The latest committed version as a subquery, for queries that read it in the same trip."""
    return select(func.max(ModelCheckpoint.version)).scalar_subquery()


def latest_version(session: Session) -> int | None:
    return session.scalar(select(func.max(ModelCheckpoint.version)))


def get_checkpoint(session: Session, version: int) -> ModelCheckpoint | None:
    return session.get(ModelCheckpoint, version)


def checkpoint_state(row: ModelCheckpoint) -> CheckpointState:
    """A stored checkpoint as the codec reads it."""
    return CheckpointState(meta=row.meta, centers=row.centers, counts=row.counts)


def checkpoint_summaries(session: Session) -> list[dict[str, Any]]:
    """One dict per stored checkpoint, oldest first, without loading the arrays."""
    columns = (
        ModelCheckpoint.version,
        ModelCheckpoint.generation,
        ModelCheckpoint.created_at,
        ModelCheckpoint.trained_rows,
        ModelCheckpoint.n_clusters,
        ModelCheckpoint.embedding_model,
    )
    rows = session.execute(select(*columns).order_by(ModelCheckpoint.version)).all()
    return [row._asdict() for row in rows]


def add_checkpoint(session: Session, checkpoint: ModelCheckpoint, *, keep: int) -> None:
    """Insert a new version (the primary key refuses a second writer of the same version)."""
    session.add(checkpoint)
    session.flush()
    session.execute(
        delete(ModelCheckpoint).where(ModelCheckpoint.version <= checkpoint.version - keep)
    )


def add_history(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(ClusterAssignment), rows)


def user_history(session: Session, user_id: str) -> list[ClusterAssignment]:
    return list(
        session.scalars(
            select(ClusterAssignment)
            .where(ClusterAssignment.user_id == user_id)
            .order_by(ClusterAssignment.id)
        )
    )


def delete_user_history(session: Session, user_id: str) -> int:
    return rowcount(
        session.execute(delete(ClusterAssignment).where(ClusterAssignment.user_id == user_id))
    )


def add_metrics(session: Session, snapshot: ClusterMetrics) -> None:
    session.add(snapshot)


def latest_metrics(session: Session) -> ClusterMetrics | None:
    return session.scalars(
        select(ClusterMetrics).order_by(ClusterMetrics.id.desc()).limit(1)
    ).first()


def metrics_of_version(session: Session, version: int) -> ClusterMetrics | None:
    """The newest quality snapshot taken of `version`, if any."""
    return session.scalars(
        select(ClusterMetrics)
        .where(ClusterMetrics.model_version == version)
        .order_by(ClusterMetrics.id.desc())
        .limit(1)
    ).first()


def metrics_history(session: Session, limit: int) -> list[ClusterMetrics]:
    rows = session.scalars(select(ClusterMetrics).order_by(ClusterMetrics.id.desc()).limit(limit))
    return list(reversed(list(rows)))
