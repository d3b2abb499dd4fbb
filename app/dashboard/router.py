"""GET /dashboard (the page and its two files) and GET /v1/dashboard/* (the data it reads).

The page and its files hold no data and are served to anyone; every number comes from the
/v1 endpoints, behind the `read` scope like the rest of the API. When the service has keys the
page asks for one and keeps it in sessionStorage: never in a URL, gone with the tab.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from app.auth import require
from app.dashboard import service as dashboard_service
from app.dashboard.cache import Keyed, Recent
from app.dashboard.schemas import ClusterMapOut, Pipeline, Versions
from app.dependencies import ReadSession, SettingsDep
from app.errors import NotFound

T = TypeVar("T")
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# Everything the page loads comes from this origin; no inline script, no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

# The page polls every 3 s; one read per 2 s per process (ten times the read's duration when
# that is longer) serves every open page. Past 30 s (nobody was looking) a request reads
# afresh rather than show old numbers.
PIPELINE_FRESH_SECONDS = 2.0
PIPELINE_STALE_SECONDS = 30.0

page = APIRouter(prefix="/dashboard", include_in_schema=False)
data = APIRouter(
    prefix="/v1/dashboard", tags=["dashboard"], dependencies=[Depends(require("read"))]
)


@cache
def _page_html(keys: bool) -> str:
    html = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    return html.replace('data-auth="open"', 'data-auth="key"') if keys else html


@page.get("")
def get_page(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(_page_html(bool(settings.api_keys)), headers=PAGE_HEADERS)


@page.get("/static/{name}")
def get_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"no dashboard file {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)


def shared(name: str, make: Callable[[Request], T]) -> Callable[[Request], T]:
    """A dependency: this app's one `name` object, made on first use (a race makes two and
    keeps one, which costs one extra read)."""

    def get(request: Request) -> T:
        value = getattr(request.app.state, name, None)
        if value is None:
            value = make(request)
            setattr(request.app.state, name, value)
        return value

    return get


def _pipeline_reader(request: Request) -> Recent[Pipeline]:
    db, settings = request.app.state.db, request.app.state.settings
    return Recent(
        lambda: dashboard_service.pipeline(db, settings=settings),
        fresh=PIPELINE_FRESH_SECONDS,
        stale=PIPELINE_STALE_SECONDS,
    )


PipelineReader = Annotated[
    Recent[Pipeline], Depends(shared("dashboard_pipeline", _pipeline_reader))
]
MapCache = Annotated[Keyed, Depends(shared("dashboard_map", lambda _: Keyed()))]
VersionsCache = Annotated[Keyed, Depends(shared("dashboard_versions", lambda _: Keyed()))]


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@data.get("/pipeline")
def get_pipeline(reader: PipelineReader) -> Pipeline:
    """Events, users, the model and its age, the lag, whether a trainer runs, and how many
    more users the first model waits for, as read at most a few seconds ago (`read_at`): the
    counts grow with the event log, so one read serves every page that polls meanwhile."""
    return reader.get()


@data.get("/map", response_model=ClusterMapOut)
def get_map(session: ReadSession, cache: MapCache) -> Response:
    """The newest cluster map: centres and a bounded sample of users in 2-D, made by the worker
    once per evaluated model version."""
    return _json(dashboard_service.cluster_map_json(session, cache=cache))


@data.get("/versions", response_model=Versions)
def get_versions(
    session: ReadSession,
    cache: VersionsCache,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """Quality and cluster sizes of the latest `limit` evaluated versions, oldest first, with
    refits, reclusters and consolidations marked."""
    return _json(dashboard_service.versions_json(session, limit=limit, cache=cache))
