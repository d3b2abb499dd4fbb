"""Operability: Prometheus metrics, structured logs and request ids."""

from __future__ import annotations

from fastapi import FastAPI

from app.observability.logging import RequestIdMiddleware, configure_logging
from app.observability.metrics import HttpMetricsMiddleware, metrics_router

__all__ = ["configure_logging", "install_observability"]


def install_observability(app: FastAPI) -> None:
    """`GET /metrics`, request metrics and request ids (the id is outermost, so every log
    line of the request, the access line included, carries it)."""
    app.include_router(metrics_router)
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
