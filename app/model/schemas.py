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
    sizes: list[int]  # in the order of `/v1/clusters`
    changed_share: float | None  # users whose cluster id changed since the previous snapshot


class Refit(BaseModel):
    """A decision about a new generation."""

    decided_at: datetime
    trigger: str  # growth, turnover, recluster
    adopted: bool
    reason: str
    k: int
    population: int  # users with a profile when it was tried
    model_version: int | None  # the version it was judged against
    new_version: int | None  # the version it became, if adopted
    current_held_out_inertia: float | None  # mean per held-out user, current model
    candidate_held_out_inertia: float | None  # the same, candidate
    born: list[int]  # cluster ids new in the candidate
    ended: list[int]  # ids the candidate does not continue
    splits: dict[str, list[int]]  # old id -> the ids it split into
    merges: dict[str, list[int]]  # new id -> the old ids merged into it
    moved_share: float | None  # share of the sample whose cluster id the candidate changes


class CurrentMetrics(Metrics):
    latest_model_version: int  # what user answers use now; model_version may lag it a little


class MetricsHistory(BaseModel):
    snapshots: list[Metrics]
    refits: list[Refit]  # the decisions over the same period, oldest first


class KCandidate(BaseModel):
    k: int
    held_out_inertia: float
    standard_error: float
    simplified_silhouette: float


class KReport(BaseModel):
    """How many clusters the latest generation's sample supports, and why."""

    mode: str  # "auto" (refits adopt the chosen k) or "fixed"
    current_k: int | None  # the live model's
    chosen_k: int
    reason: str
    criterion: str
    sample_size: int
    candidates: list[KCandidate]
    decided_at: datetime
    model_version: int | None  # the version the report was made against
