"""GET /v1/stats: how far the pipeline has got."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import require
from app.dependencies import ReadSession
from app.stats import service as stats_service
from app.stats.schemas import Stats

router = APIRouter(prefix="/v1", tags=["stats"], dependencies=[Depends(require("read"))])


@router.get("/stats")
def get_stats(session: ReadSession) -> Stats:
    """Event counts, users, the current model and the processing lag."""
    return stats_service.pipeline_stats(session)
