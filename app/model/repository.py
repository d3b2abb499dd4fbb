"""All SQL about model checkpoints, refit decisions, quality snapshots and cluster maps."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, delete, func, select, update
from sqlalchemy.orm import Session, defer

from app.clustering.codec import CheckpointState
from app.db.models import (
    ClusterMap,
    ClusterMetrics,
    ModelCheckpoint,
    ModelRefit,
)
from app.db.session import dialect_insert


def latest_checkpoint(session: Session) -> ModelCheckpoint | None:
    return session.scalars(
        select(ModelCheckpoint).order_by(ModelCheckpoint.version.desc()).limit(1)
    ).first()


@functools.cache
def latest_version_query() -> ScalarSelect[Any]:
    """The latest committed version as a subquery, for queries that read it in the same trip
    (one object per process, so statements built around it can be built once)."""
    return select(func.max(ModelCheckpoint.version)).scalar_subquery()


def latest_version(session: Session) -> int | None:
    return session.scalar(select(func.max(ModelCheckpoint.version)))


def get_checkpoint(session: Session, version: int) -> ModelCheckpoint | None:
    return session.get(ModelCheckpoint, version)


def checkpoint_state(row: ModelCheckpoint) -> CheckpointState:
    """A stored checkpoint as the codec reads it."""
    return CheckpointState(meta=row.meta, centers=row.centers, counts=row.counts)


CLUSTER_IDS = "cluster_ids"  # checkpoint meta: the public id of each centre, in centre order
NEXT_CLUSTER_ID = "next_cluster_id"  # checkpoint meta: the next id never used


def checkpoint_ids(row: ModelCheckpoint) -> tuple[list[int], int]:
    """A checkpoint's cluster ids and next unused id (checkpoints before ids: the indexes)."""
    ids = [int(i) for i in row.meta.get(CLUSTER_IDS, range(row.n_clusters))]
    return ids, int(row.meta.get(NEXT_CLUSTER_ID, max(ids, default=-1) + 1))


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


def add_refit(session: Session, decision: ModelRefit) -> None:
    session.add(decision)


def refits(session: Session, limit: int) -> list[ModelRefit]:
    """The latest `limit` refit decisions, oldest first."""
    rows = session.scalars(select(ModelRefit).order_by(ModelRefit.id.desc()).limit(limit))
    return list(reversed(list(rows)))


def latest_refit(session: Session) -> ModelRefit | None:
    return session.scalars(select(ModelRefit).order_by(ModelRefit.id.desc()).limit(1)).first()


def latest_refit_with_report(session: Session) -> ModelRefit | None:
    """The newest decision that carries a k report (a sample too small for one has none)."""
    for row in session.scalars(select(ModelRefit).order_by(ModelRefit.id.desc()).limit(50)):
        if row.details.get("k_report"):
            return row
    return None


def latest_checkpoint_header(session: Session) -> Any:
    """The latest checkpoint's version and n_clusters, without its arrays."""
    return session.execute(
        select(ModelCheckpoint.version, ModelCheckpoint.n_clusters)
        .order_by(ModelCheckpoint.version.desc())
        .limit(1)
    ).first()


def latest_metrics_id(session: Session) -> int | None:
    return session.scalar(select(func.max(ClusterMetrics.id)))


def latest_metrics_mark(session: Session) -> tuple[int, datetime] | None:
    """The newest snapshot's id and time, without its JSON: enough to tell it from another."""
    row = session.execute(
        select(ClusterMetrics.id, ClusterMetrics.computed_at)
        .order_by(ClusterMetrics.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def quality_history(session: Session, limit: int) -> list[ClusterMetrics]:
    """The latest `limit` snapshots, oldest first, without loading their cluster explanations."""
    query = (
        select(ClusterMetrics)
        .options(defer(ClusterMetrics.clusters, raiseload=True))
        .order_by(ClusterMetrics.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))[::-1]


def add_map(session: Session, row: dict[str, Any], *, keep_points: int) -> None:
    """Store a version's map (the first one stored for a version stays), then empty the
    points of all but the newest `keep_points` maps: the rows stay, as small version marks."""
    session.execute(
        dialect_insert(session, ClusterMap)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["model_version"])
    )
    newest = select(ClusterMap.model_version).order_by(ClusterMap.model_version.desc())
    oldest_kept = session.scalar(newest.offset(keep_points - 1).limit(1))
    if oldest_kept is not None:
        session.execute(
            update(ClusterMap)
            .where(ClusterMap.model_version < oldest_kept, ClusterMap.points.is_not(None))
            .values(points=None)
        )


def latest_map_version(session: Session) -> int | None:
    """The newest version with a map to show (its points kept)."""
    return session.scalar(
        select(ClusterMap.model_version)
        .where(ClusterMap.points.is_not(None))
        .order_by(ClusterMap.model_version.desc())
        .limit(1)
    )


def get_map(session: Session, version: int) -> ClusterMap | None:
    return session.get(ClusterMap, version)


def newest_version_mark(session: Session) -> int | None:
    return session.scalar(select(func.max(ClusterMap.model_version)))


def version_marks(session: Session, versions: list[int]) -> dict[int, tuple[int, bool]]:
    """model_version -> (generation, consolidation) for those of `versions` that have a map."""
    if not versions:
        return {}
    rows = session.execute(
        select(ClusterMap.model_version, ClusterMap.generation, ClusterMap.consolidation).where(
            ClusterMap.model_version.between(min(versions), max(versions))
        )
    ).tuples()
    return {version: (generation, consolidation) for version, generation, consolidation in rows}
