"""GET /v1/quarantine, POST /v1/quarantine/retry, POST .../{id}/retry, DELETE .../{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from app.auth import require
from app.dependencies import ReadSession, WriteSession
from app.quarantine import service as quarantine_service
from app.quarantine.schemas import Dropped, QuarantinePage, Released

router = APIRouter(
    prefix="/v1/quarantine", tags=["quarantine"], dependencies=[Depends(require("admin"))]
)
EventNumber = Annotated[int, Path(ge=1, le=2**63 - 1, description="`id` from the listing")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not quarantined"}}


@router.get("")
def list_quarantined(
    session: ReadSession,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuarantinePage:
    """Events the worker could not fold, with the reason, oldest first."""
    return quarantine_service.list_page(session, after=after, limit=limit)


@router.post("/retry")
def retry_all(session: WriteSession) -> Released:
    """Put every quarantined event back in the work queue (after fixing the cause)."""
    return quarantine_service.retry(session, ids=None)


@router.post("/{event:int}/retry", responses=NOT_FOUND)
def retry_one(event: EventNumber, session: WriteSession) -> Released:
    """Put one quarantined event back in the work queue."""
    return quarantine_service.retry(session, ids=[event])


@router.delete("/{event:int}", responses=NOT_FOUND)
def drop_one(event: EventNumber, session: WriteSession) -> Dropped:
    """Delete one quarantined event for good."""
    return quarantine_service.drop(session, ids=[event])
