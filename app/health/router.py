"""Liveness and readiness probes."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.db.errors import Trouble, classify
from app.db.migrate import schema_status
from app.db.session import Database, UnsupportedDatabaseError
from app.errors import Unavailable
from app.event import repository as event_repository

router = APIRouter(tags=["health"])
OK = "ok"
# A write that failed this recently for a lasting reason (full, read-only, schema) keeps the
# service unready even when the rolled-back probe gets through: on a full disk SQLite only
# fails at commit, which the probe never reaches. It expires so that an unready replica that
# gets no traffic (so no writes) does not stay unready forever once the cause is fixed.
WRITE_FAILURE_MEMORY_SECONDS = 60.0
LASTING = (Trouble.full, Trouble.read_only, Trouble.not_migrated)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers, its schema is this code's, it takes writes, and (with an
    in-process worker) the model is loaded and the worker makes progress. Each check says why."""
    db: Database = request.app.state.db
    checks: dict[str, Any] = await run_in_threadpool(database_checks, db)
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        checks["embedding_model"] = worker.model_status
        checks["worker"] = worker.progress_status()
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v not in (OK, "loaded"))
    if failing:
        raise Unavailable(f"not ready: {failing}", extra={"checks": checks})
    return JSONResponse({"status": "ready", "checks": checks})


def database_checks(db: Database) -> dict[str, str]:
    """database (reachable), schema (at this code's head), writes (a rolled-back insert)."""
    checks = {"database": OK, "schema": "unknown", "writes": "unknown"}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            status = schema_status(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        checks["database"] = str(classify(exc) or Trouble.unreachable)
        return checks
    except UnsupportedDatabaseError as exc:
        checks["database"] = f"unsupported: {exc}"
        return checks
    checks["schema"] = OK if status.current else status.detail
    if not status.current:
        return checks  # nothing to write into
    try:
        with db.probe() as session:
            event_repository.insert_probe(session)
    except SQLAlchemyError as exc:
        checks["writes"] = str(classify(exc) or "failing")
        return checks
    health = db.write_health
    recent = (
        health.failed_at is not None
        and time.monotonic() - health.failed_at < WRITE_FAILURE_MEMORY_SECONDS
    )
    if health.trouble in LASTING and recent:
        checks["writes"] = f"{health.trouble} (a write failed just now)"
    else:
        checks["writes"] = OK
    return checks
