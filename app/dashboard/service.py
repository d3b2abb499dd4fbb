"""The dashboard's data: the map made once per evaluated model version, and the page's reads."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.clustering import repository as clustering_repository
from app.clustering.model import OnlineKMeans
from app.clustering.trainer import CONSOLIDATED
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.dashboard import repository as dashboard_repository
from app.dashboard.cache import Keyed
from app.dashboard.projection import project
from app.dashboard.schemas import (
    ClusterMapOut,
    FirstFit,
    MapCenter,
    Pipeline,
    VersionQuality,
    Versions,
)
from app.db.base import utcnow
from app.db.models import ClusterMetrics
from app.db.session import Database
from app.stats.router import get_stats
from app.worker.leader import trainer_present

MAP_USERS = 1000  # users drawn per map: enough to show each cluster's shape, light on a phone
MAP_KEEP = 20  # maps that keep their points; older rows stay as version marks
MAP_KEYWORDS = 5  # keywords per cluster shown on the map
DECIMALS = 4  # coordinates are for the eye: four decimals keep a map ~20 kB


def record_map(db: Database, model: OnlineKMeans, snapshot: ClusterMetrics) -> None:
    """Project the model that `snapshot` evaluated, with a fresh sample of users, and store it
    with the version. The worker calls this once per evaluated version, never a page view."""
    with db.read() as session:
        checkpoint = clustering_repository.get_checkpoint(session, snapshot.model_version)
        rows = clustering_repository.profile_sample(session, MAP_USERS)
    if checkpoint is None:  # pruned while the worker was far behind: the next version maps
        return
    sample, _ = unit_rows([blob for _, blob in rows], model.n_features)
    labels = model.predict(sample) if len(sample) else np.empty(0, dtype=np.int64)
    projection = project(model.centers, np.asarray(snapshot.sizes), sample, labels)
    keywords = {c["cluster_id"]: c["keywords"][:MAP_KEYWORDS] for c in snapshot.clusters}
    centers = np.round(projection.centers, DECIMALS)
    points = np.round(projection.points, DECIMALS)
    row = {
        "model_version": snapshot.model_version,
        "generation": checkpoint.generation,
        "consolidation": CONSOLIDATED in checkpoint.meta,
        "computed_at": utcnow(),
        "explained": round(projection.explained, DECIMALS),
        "centers": [
            {
                "cluster_id": cluster,
                "x": float(x),
                "y": float(y),
                "size": int(snapshot.sizes[cluster]),
                "keywords": keywords.get(cluster, []),
            }
            for cluster, (x, y) in enumerate(centers)
        ],
        "points": [[float(x), float(y), int(c)] for (x, y), c in zip(points, labels, strict=True)],
    }
    with db.write() as session:
        dashboard_repository.add_map(session, row, keep_points=MAP_KEEP)


def pipeline(db: Database, *, settings: Settings) -> Pipeline:
    """The live state of the pipeline, and how far the first model is from being trained."""
    read_at = utcnow()
    with db.read() as session:
        stats = get_stats(session)
    waiting = 0
    if stats.model.version is None:
        waiting = max(0, settings.min_users_first_fit - stats.users)
    return Pipeline(
        read_at=read_at,
        stats=stats,
        trainer_running=trainer_present(db),
        first_fit=FirstFit(min_users=settings.min_users_first_fit, waiting_for_users=waiting),
    )


def cluster_map_json(session: Session, *, cache: Keyed) -> bytes:
    """The newest stored map (an empty one before the first evaluation), as JSON."""
    version = dashboard_repository.latest_map_version(session)
    return cache.get(version, lambda: _cluster_map(session, version))


def _cluster_map(session: Session, version: int | None) -> ClusterMapOut:
    row = None if version is None else dashboard_repository.get_map(session, version)
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
        clustering_repository.latest_metrics_id(session),
        dashboard_repository.newest_version_mark(session),
        limit,
    )
    return cache.get(key, lambda: versions(session, limit=limit))


def versions(session: Session, *, limit: int) -> Versions:
    """Quality and cluster sizes per evaluated version, with refits, reclusters and
    consolidations marked, oldest first."""
    rows = clustering_repository.quality_history(session, limit)
    marks = dashboard_repository.version_marks(session, [r.model_version for r in rows])
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
