"""GET /v1/users/{id}/recommendations, GET /v1/users/{id}/interests, GET /v1/clusters/{id}/items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from app.auth import require
from app.dependencies import ReadSession
from app.recommend import service as recommend_service
from app.recommend.interests import user_interests
from app.recommend.schemas import ClusterItems, Interests, Recommendations
from app.schemas import IdPath

router = APIRouter(prefix="/v1", tags=["recommendations"], dependencies=[Depends(require("read"))])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown user"}}
Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("/users/{user_id}/recommendations", responses=NOT_FOUND)
def get_recommendations(
    user_id: IdPath, request: Request, session: ReadSession, limit: Limit = 20
) -> Recommendations:
    """Items the user has not interacted with, ranked from what members of the user's
    clusters engaged with (the user's interests blended by importance), each with its reason;
    the global ranking, saying why, while the user is pending."""
    state = request.app.state
    return recommend_service.recommend(
        session, user_id=user_id, limit=limit, models=state.models, settings=state.settings
    )


@router.get("/users/{user_id}/interests", responses=NOT_FOUND)
def get_interests(user_id: IdPath, request: Request, session: ReadSession) -> Interests:
    """The user's several interests from their own events (the same events give the same
    interests, whatever their order), each with its time-decayed importance, nearest cluster,
    keywords and representative items."""
    state = request.app.state
    return user_interests(session, user_id=user_id, models=state.models, settings=state.settings)


@router.get(
    "/clusters/{cluster_id}/items", responses={404: {"description": "No ranking for the cluster"}}
)
def get_cluster_items(
    cluster_id: Annotated[int, Path(ge=0, le=2**31 - 1)],
    session: ReadSession,
    limit: Limit = 20,
) -> ClusterItems:
    """The items the cluster's members engaged with most (decayed, weighted by event type)."""
    return recommend_service.cluster_items(session, cluster_id=cluster_id, limit=limit)
