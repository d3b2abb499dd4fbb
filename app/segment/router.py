"""GET /v1/clusters/{id}/members, GET /v1/assignments (JSON Lines), GET /v1/changes: the
assignment domain's HTTP face (it sits above the model domain, which records assignments)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from app.assignment import service as assignment_service
from app.assignment.schemas import Changes, Members
from app.auth import require
from app.dependencies import ReadSession
from app.model import repository as model_repository
from app.schemas import MAX_ID

router = APIRouter(prefix="/v1", tags=["segments"], dependencies=[Depends(require("read"))])
JSON_LINES = "application/x-ndjson"
ClusterId = Annotated[int, Path(ge=0, le=2**31 - 1)]


@router.get("/clusters/{cluster_id}/members")
def get_members(
    cluster_id: ClusterId,
    session: ReadSession,
    after: Annotated[str | None, Query(min_length=1, max_length=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Members:
    """The cluster's current members in user_id order, a keyset page at a time: pass
    `next_after` as `after`. Training between pages never makes a page repeat a member or skip
    one that stayed a member; each row names the model version that assigned it."""
    return assignment_service.members(
        session,
        cluster_id=cluster_id,
        after=after,
        limit=limit,
        latest=model_repository.latest_version(session),
    )


@router.get(
    "/assignments",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One JSON object per line: user_id, cluster_id, model_version, "
            "distance, assigned_at. The `Changes-Cursor` header is the change feed's cursor at "
            "the same moment: poll GET /v1/changes?after=<it> to stay in sync.",
            "content": {JSON_LINES: {"schema": {"type": "string"}}},
        }
    },
)
def export_assignments(request: Request) -> StreamingResponse:
    """Every user's current cluster as JSON Lines (streamed, constant memory)."""
    stack = ExitStack()
    session = stack.enter_context(assignment_service.snapshot(request.app.state.db))
    try:
        cursor = assignment_service.changes_cursor(session)
        latest = model_repository.latest_version(session)
    except BaseException:
        stack.close()
        raise

    def lines() -> Iterator[str]:
        with stack:  # the snapshot ends with the stream, also when the client goes away
            yield from assignment_service.export_lines(session)

    headers = {"Changes-Cursor": str(cursor), "Model-Version": str(latest or "")}
    return StreamingResponse(lines(), media_type=JSON_LINES, headers=headers)


@router.get("/changes", responses={410: {"description": "The cursor is older than the retention"}})
def get_changes(
    session: ReadSession,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Changes:
    """Users whose cluster changed, in order, after the cursor `after` (0: from the oldest
    kept). Poll with `next_after`; the cursor is durable (it survives restarts)."""
    return assignment_service.changes(
        session, after=after, limit=limit, latest=model_repository.latest_version(session)
    )
