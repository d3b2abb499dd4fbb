"""PUT /v1/items/{item_id}, POST /v1/items."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from app.auth import require
from app.body import openapi_body, parse_body, read_body
from app.db.base import utcnow
from app.dependencies import SettingsDep, WriteSession
from app.item import service as item_service
from app.item.schemas import ItemBatch, ItemIn, ItemText, UpsertResult
from app.schemas import IdPath

router = APIRouter(prefix="/v1", tags=["items"], dependencies=[Depends(require("ingest"))])


@router.put("/items/{item_id}", response_model=UpsertResult, openapi_extra=openapi_body(ItemText))
async def put_item(
    item_id: IdPath,
    request: Request,
    settings: SettingsDep,
    session: WriteSession,
) -> UpsertResult:
    """Create or replace one item's text; waiting events for it become processable."""
    raw = await read_body(request, settings.max_body_bytes)

    def store() -> UpsertResult:
        body = parse_body(raw, ItemText, {})
        item = ItemIn(item_id=item_id, text=body.text)
        return item_service.upsert(session, items=[item], now=utcnow())

    return await run_in_threadpool(store)


@router.post("/items", response_model=UpsertResult, openapi_extra=openapi_body(ItemBatch))
async def post_items(
    request: Request, settings: SettingsDep, session: WriteSession
) -> UpsertResult:
    """Create or replace many items at once."""
    raw = await read_body(request, settings.max_body_bytes)

    def store() -> UpsertResult:
        batch = parse_body(raw, ItemBatch, {"max_items": settings.max_events_per_request})
        return item_service.upsert(session, items=batch.items, now=utcnow())

    return await run_in_threadpool(store)
