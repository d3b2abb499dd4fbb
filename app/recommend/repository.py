"""All SQL about cluster rankings: each model version's ranked items per cluster."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.clustering.interests import Ranking
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
) -> dict[int, Ranking]:
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
    rows: dict[int, list[tuple[str, float, bytes | None]]] = {c: [] for c in cluster_ids}
    for cluster_id, item_id, score, blob in session.execute(query).tuples():
        rows[cluster_id].append((item_id, score, blob))
    return {cluster: _ranking(found) for cluster, found in rows.items()}


def _ranking(rows: list[tuple[str, float, bytes | None]]) -> Ranking:
    """Decoded in one pass: the stored float16 vectors joined and read as one array."""
    width = max((len(blob) for _, _, blob in rows if blob), default=0)
    blank = bytes(width)
    blobs = b"".join(blob if blob and len(blob) == width else blank for _, _, blob in rows)
    vectors = np.frombuffer(blobs, dtype="<f2").astype(np.float32).reshape(len(rows), width // 2)
    scores = np.array([score for _, score, _ in rows], dtype=np.float64)
    return Ranking([item for item, _, _ in rows], scores, vectors)
