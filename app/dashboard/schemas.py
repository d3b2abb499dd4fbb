"""What the dashboard's data endpoints answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.stats.schemas import Stats


class FirstFit(BaseModel):
    min_users: int  # users with a profile the trainer waits for before its first model
    waiting_for_users: int  # how many more it needs; 0 once there is a model


class Pipeline(BaseModel):
    read_at: datetime  # when these numbers were read (the server's clock, not the browser's)
    stats: Stats  # exactly what GET /v1/stats answers
    trainer_running: bool  # some worker holds the trainer lock
    first_fit: FirstFit


class MapCenter(BaseModel):
    cluster_id: int
    x: float
    y: float
    size: int  # users in the cluster at the evaluation that made the map
    keywords: list[str]


class ClusterMapOut(BaseModel):
    model_version: int | None  # None until the first model version is evaluated
    generation: int | None
    computed_at: datetime | None
    explained: float | None  # share of the centres' size-weighted spread the plane keeps
    centers: list[MapCenter]
    points: list[tuple[float, float, int]]  # a bounded sample of users: x, y, cluster_id


class VersionQuality(BaseModel):
    model_version: int
    computed_at: datetime
    n_users: int
    silhouette: float | None
    simplified_silhouette: float | None
    davies_bouldin: float | None
    changed_share: float | None
    sizes: list[int]
    generation: int | None  # None for versions evaluated before their map was recorded
    new_generation: bool  # a refit or recluster since the previous evaluated version
    consolidation: bool  # the version is a consolidation (Lloyd) step


class Versions(BaseModel):
    versions: list[VersionQuality]  # oldest first
