"""Catalogue contract."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.event.schemas import Id, Text


class ItemText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class ItemIn(ItemText):
    item_id: Id


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(min_length=1)

    @field_validator("items", mode="before")
    @classmethod
    def _not_too_many(cls, value: object, info: ValidationInfo) -> object:
        limit = (info.context or {}).get("max_items")
        if isinstance(value, list) and limit is not None and len(value) > limit:
            raise ValueError(f"at most {limit} items per request")
        return value


class UpsertResult(BaseModel):
    upserted: int
