"""The pipeline's progress, as GET /v1/stats answers it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class EventStats(BaseModel):
    received: int
    applied: int
    pending: int
    waiting_for_item: int
    quarantined: int  # could not be folded: see GET /v1/quarantine


class ModelStats(BaseModel):
    version: int | None
    trained_at: datetime | None
    n_clusters: int | None


class Stats(BaseModel):
    events: EventStats
    users: int
    model: ModelStats
    lag_seconds: float  # age of the oldest processable event not yet applied
