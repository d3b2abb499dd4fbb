"""The 2-D map of each evaluated model version, made once, read by the dashboard."""

from __future__ import annotations

import numpy as np

from app.clustering.model import OnlineKMeans
from app.clustering.projection import project
from app.clustering.vectors import unit_rows
from app.db.base import utcnow
from app.db.models import ClusterMetrics
from app.db.session import Database
from app.model import repository as model_repository
from app.model.trainer import CONSOLIDATED
from app.profile import repository as profile_repository

MAP_USERS = 1000  # users drawn per map: enough to show each cluster's shape, light on a phone
MAP_KEEP = 20  # maps that keep their points; older rows stay as version marks
MAP_KEYWORDS = 5  # keywords per cluster shown on the map
DECIMALS = 4  # coordinates are for the eye: four decimals keep a map ~20 kB


def record_map(db: Database, model: OnlineKMeans, snapshot: ClusterMetrics) -> None:
    """Project the model that `snapshot` evaluated, with a fresh sample of users, and store it
    with the version. The worker calls this once per evaluated version; a page only reads it."""
    with db.read() as session:
        checkpoint = model_repository.get_checkpoint(session, snapshot.model_version)
        rows = profile_repository.sample(session, MAP_USERS)
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
        model_repository.add_map(session, row, keep_points=MAP_KEEP)
