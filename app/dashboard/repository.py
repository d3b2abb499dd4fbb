"""All SQL about the dashboard's cluster maps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.models import ClusterMap
from app.db.session import dialect_insert


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
