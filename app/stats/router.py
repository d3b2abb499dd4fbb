"""GET /v1/stats: how far the pipeline has got."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.auth import require
from app.db.base import utcnow
from app.dependencies import ReadSession
from app.event import repository as event_repository
from app.model import repository as model_repository
from app.profile import repository as profile_repository

router = APIRouter(prefix="/v1", tags=["stats"], dependencies=[Depends(require("read"))])


class EventStats(BaseModel):
    received: int
    applied: int
    pending: int
    waiting_for_item: int


class ModelStats(BaseModel):
    version: int | None
    trained_at: datetime | None
    n_clusters: int | None


class Stats(BaseModel):
    events: EventStats
    users: int
    model: ModelStats
    lag_seconds: float  # age of the oldest processable event not yet applied


@router.get("/stats")
def get_stats(session: ReadSession) -> Stats:
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
