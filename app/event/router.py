"""POST /v1/events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status
from starlette.concurrency import run_in_threadpool

from app.auth import require
from app.body import openapi_body, parse_body, read_body
from app.db.base import utcnow
from app.dependencies import DatabaseDep, SettingsDep
from app.event import service as event_service
from app.event.group_commit import SMALL_REQUEST, GroupCommit
from app.event.schemas import EventBatch, IngestResult

router = APIRouter(prefix="/v1", tags=["events"])
SMALL_BODY = 16_384  # bytes: bodies this small are parsed on the event loop


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    dependencies=[Depends(require("ingest"))],
    openapi_extra=openapi_body(EventBatch),
    responses={413: {"description": "Body too large"}, 422: {"description": "Invalid events"}},
)
async def post_events(request: Request, settings: SettingsDep, db: DatabaseDep) -> IngestResult:
    """Accept 1..N events; 202 means durable. One invalid event rejects the whole batch."""
    now = utcnow()
    raw = await read_body(request, settings.max_body_bytes)
    context = event_service.validation_context(settings, now=now)

    if len(raw) <= SMALL_BODY:
        # A few events: parsed here (microseconds), then stored with the requests that arrive
        # meanwhile, in one statement (app/event/group_commit.py); answered after the commit.
        small = parse_body(raw, EventBatch, context)
        if len(small.events) <= SMALL_REQUEST:
            group: GroupCommit = request.app.state.group_commit
            return await group.ingest(small.events, now=now)

    def validate_and_store() -> IngestResult:
        # CPU and database work off the event loop, in one trip to the thread pool; committed
        # before the answer leaves. Ingest is one statement: see Database.write_statement.
        batch = parse_body(raw, EventBatch, context)
        rows = event_service.new_rows(batch.events, now=now)
        with db.write_statement() as session:
            return event_service.store(session, rows, submitted=len(batch.events))

    return await run_in_threadpool(validate_and_store)
