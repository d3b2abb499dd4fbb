"""Answers about one user."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Alternative(BaseModel):
    cluster_id: int
    distance: float


class ProfileInfo(BaseModel):
    events: int
    pending_events: int
    quarantined_events: int  # set aside because they could not be folded (GET /v1/quarantine)
    last_event_at: datetime | None
    updated_at: datetime | None


class UserCluster(BaseModel):
    user_id: str
    status: Literal["assigned", "pending"]
    reason: str | None  # why the user is pending; null when assigned
    cluster_id: int | None
    distance: float | None
    confidence: float | None  # 1 - d_nearest / d_second: 0 = on the border, 1 = at the center
    alternatives: list[Alternative]
    model_version: int | None
    profile: ProfileInfo


class Assignment(BaseModel):
    model_version: int
    cluster_id: int
    distance: float
    assigned_at: datetime


class UserHistory(BaseModel):
    user_id: str
    assignments: list[Assignment]


class Erased(BaseModel):
    user_id: str
    events: int
    profile: int
    history: int
