"""create_app(settings): lifespan, routers, error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.db.session import Database
from app.errors import install_error_handlers
from app.event.router import router as event_router
from app.health.router import router as health_router
from app.item.router import router as item_router

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
        try:
            yield
        finally:
            app.state.db.dispose()

    app = FastAPI(
        title="interest-clusters",
        version="1.0.0",
        summary="Live, explainable interest clusters of users from their interaction events.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in (health_router, event_router, item_router):
        app.include_router(router)
    return app
