"""Answers about the clusters and their quality."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RepresentativeItem(BaseModel):
    item_id: str
    text: str


class ClusterInfo(BaseModel):
    cluster_id: int
    size: int
    keywords: list[str]
    representative_items: list[RepresentativeItem]


class Clusters(BaseModel):
    model_version: int | None  # the model the explanations were computed on
    # The model user answers use now. The explanations (and the metrics) are computed
    # periodically (APP_EVALUATE_INTERVAL_SECONDS), so model_version may lag it a little.
    latest_model_version: int | None
    computed_at: datetime | None
    clusters: list[ClusterInfo]


class Metrics(BaseModel):
    model_version: int
    computed_at: datetime
    n_clusters: int
    n_users: int
    silhouette: float | None
    silhouette_sample_size: int
    simplified_silhouette: float | None
    davies_bouldin: float | None
    calinski_harabasz: float | None
    inertia: float
    sizes: list[int]
    changed_share: float | None  # users whose cluster changed since the previous snapshot


class CurrentMetrics(Metrics):
    latest_model_version: int  # what user answers use now; model_version may lag it a little


class MetricsHistory(BaseModel):
    snapshots: list[Metrics]
