"""GET /v1/users/{id}/cluster, GET .../cluster/history, DELETE /v1/users/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.auth import require
from app.db.session import Database
from app.dependencies import ReadSession, WriteSession
from app.model.cache import ModelCache
from app.schemas import IdPath
from app.user import service as user_service
from app.user.schemas import Erased, UserCluster, UserHistory

router = APIRouter(prefix="/v1/users", tags=["users"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown user"}}


@router.get(
    "/{user_id}/cluster",
    dependencies=[Depends(require("read"))],
    responses=NOT_FOUND,
    response_model=UserCluster,
)
async def get_cluster(user_id: IdPath, request: Request) -> Response:
    """The user's interest cluster now, its distance, confidence and runner-up clusters."""
    # The hottest read: one hop to a thread for the whole answer (a Core read, no ORM
    # session), instead of one per sync dependency and one for a sync handler; the answer is
    # serialised once, by its own model, not validated again on the way out.
    state = request.app.state
    answer = await run_in_threadpool(
        _current_cluster, state.db, user_id, state.models, state.settings.first_fit_users
    )
    return Response(answer.model_dump_json(), media_type="application/json")


def _current_cluster(
    db: Database, user_id: str, models: ModelCache, first_fit_users: int
) -> UserCluster:
    with db.read_connection() as conn:
        return user_service.current_cluster(
            conn, user_id=user_id, models=models, first_fit_users=first_fit_users
        )


@router.get(
    "/{user_id}/cluster/history", dependencies=[Depends(require("read"))], responses=NOT_FOUND
)
def get_history(user_id: IdPath, session: ReadSession) -> UserHistory:
    """The clusters the user was assigned as model versions trained on them."""
    return user_service.history(session, user_id=user_id)


@router.delete("/{user_id}", dependencies=[Depends(require("admin"))], responses=NOT_FOUND)
def delete_user(user_id: IdPath, session: WriteSession) -> Erased:
    """Erase the user's events, profile and assignment history."""
    return user_service.erase(session, user_id=user_id)
