"""Prometheus metrics.

Two kinds: process-local instruments (HTTP requests, and the worker's cache, encode and train
timings) live in the default registry as module-level singletons, so many apps in one process
share them; the pipeline's state (events, model version, checkpoint age, silhouette) is read
from the database at scrape time, so every API replica reports the same shared truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.base import utcnow
from app.db.session import Database
from app.stats import service as stats_service

access_log = logging.getLogger("app.access")
UNMATCHED = "<unmatched>"  # every path no route matched: one label value, bounded cardinality
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template and status",
    ["method", "route", "status"],
)
CACHE_HITS = Counter(
    "interest_embed_cache_hits_total",
    "Event texts embedded without a model call (embedding cache, or a repeat in the batch)",
)
CACHE_MISSES = Counter(
    "interest_embed_cache_misses_total", "Texts encoded by the embedding model (cache misses)"
)
EVENTS_FOLDED = Counter(
    "interest_worker_events_applied_total", "Events this process folded into profiles"
)
ENCODE_SECONDS = Histogram(
    "interest_encode_batch_seconds",
    "Time to embed one batch of cache misses",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TRAIN_SECONDS = Histogram(
    "interest_train_step_seconds",
    "Time of one training step (partial_fit and checkpoint commit)",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRAIN_ROWS = Counter("interest_train_rows_total", "Profiles this process trained on")
IS_TRAINER = Gauge("interest_worker_trainer", "1 while this process holds the trainer lock")
REFITS = Counter(
    "interest_model_refits_total",
    "Refit decisions by this process's trainer: why one was tried, and whether it was adopted",
    ["trigger", "outcome"],
)

REFIT_RUNNING = Gauge(
    "interest_model_refit_running", "1 while this process's trainer fits or judges a refit"
)


def record_refit(*, trigger: str, adopted: bool) -> None:
    REFITS.labels(trigger=trigger, outcome="adopted" if adopted else "rejected").inc()


WORKER_READY = Gauge(
    "interest_worker_ready", "1 while this process's worker runs with its model loaded"
)


def record_profile_step(*, applied: int, encoded: int, encode_seconds: float) -> None:
    """What one profile step did (see app/profile/service.py StepResult)."""
    EVENTS_FOLDED.inc(applied)
    CACHE_MISSES.inc(encoded)
    CACHE_HITS.inc(max(applied - encoded, 0))
    if encoded:
        ENCODE_SECONDS.observe(encode_seconds)


def record_train_step(*, rows: int, seconds: float) -> None:
    if rows:
        TRAIN_ROWS.inc(rows)
        TRAIN_SECONDS.observe(seconds)


class DatabaseCollector(Collector):
    """The pipeline's shared state, read when scraped; `interest_database_up` 0 when it can't be."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except SQLAlchemyError as exc:
            logging.getLogger(__name__).warning("metrics: database unreachable: %s", exc)
            yield GaugeMetricFamily("interest_database_up", "Database reachable", value=0)

    def _collect(self) -> Iterator[Metric]:
        with self.db.read() as session:
            stats = stats_service.pipeline_stats(session)
            silhouette = stats_service.latest_silhouette(session)
        yield GaugeMetricFamily("interest_database_up", "Database reachable", value=1)
        for state, value in stats.events.model_dump().items():
            yield GaugeMetricFamily(
                f"interest_events_{state}", f"Events {state.replace('_', ' ')}", value=value
            )
        yield GaugeMetricFamily("interest_users", "Users with a profile", value=stats.users)
        model = stats.model
        yield GaugeMetricFamily(
            "interest_model_version",
            "Latest committed model version (0: no model yet)",
            value=model.version or 0,
        )
        if model.trained_at is not None and model.n_clusters is not None:
            age = (utcnow() - model.trained_at).total_seconds()
            yield GaugeMetricFamily(
                "interest_last_checkpoint_age_seconds", "Age of the latest checkpoint", value=age
            )
            yield GaugeMetricFamily(
                "interest_model_clusters", "Clusters in the latest model", value=model.n_clusters
            )
        if silhouette is not None:
            yield GaugeMetricFamily(
                "interest_silhouette",
                "Silhouette coefficient of the latest evaluated model version",
                value=silhouette,
            )


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: HTTP, worker and pipeline metrics."""
    pipeline = CollectorRegistry(auto_describe=False)
    pipeline.register(DatabaseCollector(request.app.state.db))

    def render() -> bytes:
        return generate_latest(REGISTRY) + generate_latest(pipeline)

    return Response(await run_in_threadpool(render), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Counts and times requests by route *template* (never the raw path), logs an access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            # Labels are bounded: the template, not the path (which also keeps user ids out of
            # the access log), and a fixed set of methods.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route, str(status)).observe(elapsed)
            duration_ms = round(elapsed * 1000, 2)
            access_log.info(
                "%s %s %d %.1fms",
                method,
                route,
                status,
                duration_ms,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
