"""create_app(settings): lifespan, routers, error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, WorkerMode, get_settings
from app.dashboard import router as dashboard_router
from app.db.session import Database
from app.edge import StrictPathMiddleware
from app.errors import install_error_handlers
from app.event.group_commit import GroupCommit
from app.event.router import router as event_router
from app.health.router import router as health_router
from app.item.router import router as item_router
from app.model.cache import ModelCache
from app.model.router import router as model_router
from app.observability import install_observability
from app.openapi import problem_openapi
from app.quarantine.router import router as quarantine_router
from app.recommend.router import router as recommend_router
from app.segment.router import router as segment_router
from app.stats.router import router as stats_router
from app.user.router import router as user_router
from app.worker.loop import Worker

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            log.warning(
                "NO API KEYS CONFIGURED: the API is open to anyone who can reach it. "
                "Set APP_API_KEYS=key:scope+scope,... before exposing it."
            )
        app.state.db = Database(settings.database_url)
        app.state.group_commit = GroupCommit(app.state.db)
        app.state.models = ModelCache()
        app.state.worker = None
        if settings.worker is WorkerMode.inline:
            app.state.worker = Worker(settings, app.state.db, inline=True)
            thread = app.state.worker.start_thread()
        try:
            yield
        finally:
            if app.state.worker is not None:
                app.state.worker.stop()
                thread.join(timeout=30)
            app.state.db.dispose()

    app = FastAPI(
        title="interest-clusters",
        version="1.0.0",
        summary="Live, explainable interest clusters of users from their interaction events.",
        lifespan=lifespan,
        # `/v1/users/u/` is not `/v1/users/u`: a 404, not a 307 that clients follow blindly
        # (and that would make an id ending in `/` look like another one).
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in (
        health_router,
        event_router,
        item_router,
        user_router,
        model_router,
        stats_router,
        quarantine_router,
        recommend_router,
        segment_router,
        dashboard_router.data,
        dashboard_router.page,
    ):
        app.include_router(router)
    app.add_middleware(StrictPathMiddleware)  # inside observability: counted, with a request id
    install_observability(app)
    app.openapi = problem_openapi(app, event_types=sorted(settings.event_weights))  # type: ignore[method-assign]
    return app
