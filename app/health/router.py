"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.db.session import UnsupportedDatabaseError
from app.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and, with an in-process worker, its model is loaded."""
    db = request.app.state.db

    def ping() -> str:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return "ok"
        except SQLAlchemyError as exc:
            return f"unreachable: {type(exc.__cause__ or exc).__name__}"
        except UnsupportedDatabaseError as exc:
            return f"unsupported: {exc}"

    checks: dict[str, Any] = {"database": await run_in_threadpool(ping)}
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        checks["embedding_model"] = worker.model_status
    ready = checks["database"] == "ok" and checks.get("embedding_model", "loaded") == "loaded"
    if not ready:
        detail = "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items())
        raise Unavailable(detail, extra={"checks": checks})
    return JSONResponse({"status": "ready", "checks": checks})
