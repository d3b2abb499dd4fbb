"""GET /v1/users/{id}/cluster, GET .../cluster/history, DELETE /v1/users/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from app.auth import require
from app.dependencies import ReadSession, WriteSession
from app.schemas import IdPath
from app.user import service as user_service
from app.user.schemas import Erased, UserCluster, UserHistory

router = APIRouter(prefix="/v1/users", tags=["users"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown user"}}


@router.get("/{user_id}/cluster", dependencies=[Depends(require("read"))], responses=NOT_FOUND)
def get_cluster(user_id: IdPath, request: Request, session: ReadSession) -> UserCluster:
    """The user's interest cluster now, its distance, confidence and runner-up clusters."""
    return user_service.current_cluster(session, user_id=user_id, models=request.app.state.models)


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
