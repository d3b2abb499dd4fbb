"""GET /v1/clusters, /v1/clusters/metrics, /v1/clusters/metrics/history, /v1/clusters/k."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.auth import require
from app.dependencies import ReadSession
from app.errors import NotFound
from app.model import repository as model_repository
from app.model.schemas import (
    ClusterInfo,
    Clusters,
    CurrentMetrics,
    KCandidate,
    KReport,
    Metrics,
    MetricsHistory,
    Refit,
)

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
    """The latest `limit` snapshots and the refit decisions since the first of them, oldest
    first."""
    rows = model_repository.metrics_history(session, limit)
    since = rows[0].computed_at if len(rows) == limit else None
    decisions = [
        r for r in model_repository.refits(session, limit) if since is None or r.decided_at >= since
    ]
    return MetricsHistory(
        snapshots=[Metrics.model_validate(r, from_attributes=True) for r in rows],
        refits=[
            Refit(
                decided_at=r.decided_at,
                trigger=r.trigger,
                adopted=r.adopted,
                reason=r.reason,
                k=r.k,
                population=r.population,
                model_version=r.model_version,
                new_version=r.new_version,
                current_held_out_inertia=r.details.get("current_held_out_inertia"),
                candidate_held_out_inertia=r.details.get("candidate_held_out_inertia"),
                born=r.details.get("born", []),
                ended=r.details.get("ended", []),
                splits=r.details.get("splits", {}),
                merges=r.details.get("merges", {}),
                moved_share=r.details.get("moved_share"),
            )
            for r in decisions
        ],
    )


@router.get("/k", responses={404: {"description": "No generation has been scored yet"}})
def get_k(session: ReadSession, request: Request) -> KReport:
    """The k report of the latest refit: held-out inertia per candidate k, the chosen k and
    why. Under APP_CLUSTERS=auto refits adopt the chosen k; a fixed k keeps the report."""
    decision = model_repository.latest_refit_with_report(session)
    if decision is None:
        raise NotFound("no generation has been scored yet (the first refit follows the first fit)")
    report = decision.details["k_report"]
    latest = model_repository.latest_checkpoint_header(session)
    fixed = request.app.state.settings.fixed_clusters
    return KReport(
        mode="auto" if fixed is None else "fixed",
        current_k=latest.n_clusters if latest is not None else None,
        chosen_k=report["best"],
        reason=report["reason"],
        criterion=report["criterion"],
        sample_size=report["sample_size"],
        candidates=[KCandidate(**c) for c in report["candidates"]],
        decided_at=decision.decided_at,
        model_version=decision.model_version,
    )
