"""The pipeline's shared state, read from the database: one source for /v1/stats and /metrics."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.event import repository as event_repository
from app.model import repository as model_repository
from app.profile import repository as profile_repository
from app.stats.schemas import EventStats, ModelStats, Stats


def pipeline_stats(session: Session) -> Stats:
    """Event counts, users, the current model and the processing lag."""
    checkpoint = model_repository.latest_checkpoint(session)
    oldest = event_repository.oldest_processable_received_at(session)
    return Stats(
        events=EventStats(**event_repository.pending_counts(session)),
        users=profile_repository.count(session),
        model=ModelStats(
            version=checkpoint.version if checkpoint else None,
            trained_at=checkpoint.created_at if checkpoint else None,
            n_clusters=checkpoint.n_clusters if checkpoint else None,
        ),
        lag_seconds=max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0,
    )


def latest_silhouette(session: Session) -> float | None:
    """The silhouette of the latest evaluated model version (None before the first)."""
    snapshot = model_repository.latest_metrics(session)
    return snapshot.silhouette if snapshot is not None else None
