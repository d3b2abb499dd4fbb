"""All SQL about cluster rankings: each model version's ranked items per cluster."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.clustering.interests import Candidate
from app.db.models import ClusterItem

KEEP_VERSIONS = 2  # the previous ranking stays while readers may still be reading it


def replace(session: Session, *, version: int, rows: list[dict[str, Any]]) -> None:
    """Store `version`'s rankings (cluster_id, rank, item_id, score, vector) and drop all but
    the newest KEEP_VERSIONS versions."""
    session.execute(delete(ClusterItem).where(ClusterItem.model_version >= version))
    if rows:
        session.execute(insert(ClusterItem), [{"model_version": version, **r} for r in rows])
    kept = select(ClusterItem.model_version).distinct().order_by(ClusterItem.model_version.desc())
    oldest_kept = session.scalar(kept.offset(KEEP_VERSIONS - 1).limit(1))
    if oldest_kept is not None:
        session.execute(delete(ClusterItem).where(ClusterItem.model_version < oldest_kept))


def latest_version(session: Session) -> int | None:
    return session.scalar(select(func.max(ClusterItem.model_version)))


def rankings(
    session: Session, *, version: int, cluster_ids: list[int], depth: int
) -> dict[int, list[Candidate]]:
    """The top `depth` items of each of these clusters in `version`, best first."""
    query = (
        select(ClusterItem.cluster_id, ClusterItem.item_id, ClusterItem.score, ClusterItem.vector)
        .where(
            ClusterItem.model_version == version,
            ClusterItem.cluster_id.in_(cluster_ids),
            ClusterItem.rank < depth,
        )
        .order_by(ClusterItem.cluster_id, ClusterItem.rank)
    )
    found: dict[int, list[Candidate]] = {c: [] for c in cluster_ids}
    for cluster_id, item_id, score, blob in session.execute(query).tuples():
        vector = None if blob is None else np.frombuffer(blob, dtype="<f2").astype(np.float32)
        found[cluster_id].append(Candidate(item_id, score, vector))
    return found
