"""The dashboard's reads: the pipeline now, the newest map, quality and sizes per version."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.config import Settings
from app.dashboard.cache import Keyed
from app.dashboard.schemas import (
    ClusterMapOut,
    FirstFit,
    MapCenter,
    Pipeline,
    VersionQuality,
    Versions,
)
from app.db.base import utcnow
from app.db.session import Database
from app.model import repository as model_repository
from app.stats.service import pipeline_stats
from app.worker.leader import trainer_present


def pipeline(db: Database, *, settings: Settings) -> Pipeline:
    """The live state of the pipeline, and how far the first model is from being trained."""
    read_at = utcnow()
    with db.read() as session:
        stats = pipeline_stats(session)
    waiting = 0
    if stats.model.version is None:
        waiting = max(0, settings.first_fit_users - stats.users)
    return Pipeline(
        read_at=read_at,
        stats=stats,
        trainer_running=trainer_present(db),
        first_fit=FirstFit(min_users=settings.first_fit_users, waiting_for_users=waiting),
    )


def cluster_map_json(session: Session, *, cache: Keyed) -> bytes:
    """The newest stored map (an empty one before the first evaluation), as JSON."""
    version = model_repository.latest_map_version(session)
    return cache.get(version, lambda: _cluster_map(session, version))


def _cluster_map(session: Session, version: int | None) -> ClusterMapOut:
    row = None if version is None else model_repository.get_map(session, version)
    if row is None:
        return ClusterMapOut(
            model_version=None,
            generation=None,
            computed_at=None,
            explained=None,
            centers=[],
            points=[],
        )
    return ClusterMapOut(
        model_version=row.model_version,
        generation=row.generation,
        computed_at=row.computed_at,
        explained=row.explained,
        centers=[MapCenter.model_validate(c) for c in row.centers],
        points=[(p[0], p[1], int(p[2])) for p in row.points or []],
    )


def versions_json(session: Session, *, limit: int, cache: Keyed) -> bytes:
    """`versions`, as JSON, rebuilt only when an evaluation or a map has been stored since."""
    key = (
        model_repository.latest_metrics_id(session),
        model_repository.newest_version_mark(session),
        limit,
    )
    return cache.get(key, lambda: versions(session, limit=limit))


def versions(session: Session, *, limit: int) -> Versions:
    """Quality and cluster sizes per evaluated version, with refits, reclusters and
    consolidations marked, oldest first."""
    rows = model_repository.quality_history(session, limit)
    marks = model_repository.version_marks(session, [r.model_version for r in rows])
    result: list[VersionQuality] = []
    previous: int | None = None
    for r in rows:
        generation, consolidation = marks.get(r.model_version, (None, False))
        result.append(
            VersionQuality(
                model_version=r.model_version,
                computed_at=r.computed_at,
                n_users=r.n_users,
                silhouette=r.silhouette,
                simplified_silhouette=r.simplified_silhouette,
                davies_bouldin=r.davies_bouldin,
                changed_share=r.changed_share,
                sizes=r.sizes,
                generation=generation,
                new_generation=None not in (previous, generation) and generation != previous,
                consolidation=consolidation,
            )
        )
        previous = generation if generation is not None else previous
    return Versions(versions=result)
