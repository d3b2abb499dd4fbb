"""Catalogue contract."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.schemas import PathId, Text, refuse_oversized


class ItemText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class ItemIn(ItemText):
    item_id: PathId


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(min_length=1)

    @field_validator("items", mode="before")
    @classmethod
    def _not_too_many(cls, value: object, info: ValidationInfo) -> object:
        return refuse_oversized(value, info, limit_key="max_items", noun="items")


class UpsertResult(BaseModel):
    upserted: int
