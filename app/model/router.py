"""GET /v1/clusters, /v1/clusters/metrics, /v1/clusters/metrics/history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.auth import require
from app.dependencies import ReadSession
from app.errors import NotFound
from app.model import repository as model_repository
from app.model.schemas import ClusterInfo, Clusters, CurrentMetrics, Metrics, MetricsHistory

router = APIRouter(
    prefix="/v1/clusters", tags=["clusters"], dependencies=[Depends(require("read"))]
)


@router.get("")
def get_clusters(session: ReadSession) -> Clusters:
    """Each cluster's size, label keywords and representative items (latest snapshot)."""
    snapshot = model_repository.latest_metrics(session)
    latest = model_repository.latest_version(session)
    if snapshot is None:
        return Clusters(
            model_version=None, latest_model_version=latest, computed_at=None, clusters=[]
        )
    return Clusters(
        model_version=snapshot.model_version,
        latest_model_version=latest,
        computed_at=snapshot.computed_at,
        clusters=[ClusterInfo.model_validate(c) for c in snapshot.clusters],
    )


@router.get("/metrics", responses={404: {"description": "No model evaluated yet"}})
def get_metrics(session: ReadSession) -> CurrentMetrics:
    """Quality of the clusters now: silhouette, Davies-Bouldin, Calinski-Harabasz, inertia."""
    snapshot = model_repository.latest_metrics(session)
    if snapshot is None:
        raise NotFound("no model has been evaluated yet")
    metrics = Metrics.model_validate(snapshot, from_attributes=True)
    latest = model_repository.latest_version(session) or metrics.model_version
    return CurrentMetrics(**metrics.model_dump(), latest_model_version=latest)


@router.get("/metrics/history")
def get_metrics_history(
    session: ReadSession, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> MetricsHistory:
    """The latest `limit` snapshots, oldest first."""
    rows = model_repository.metrics_history(session, limit)
    return MetricsHistory(snapshots=[Metrics.model_validate(r, from_attributes=True) for r in rows])
