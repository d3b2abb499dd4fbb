"""Ingest contract. Checks that need settings or the clock read them from validation context."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.config import MAX_WEIGHT
from app.schemas import Id, PathId, Text, refuse_oversized

MAX_FUTURE = timedelta(minutes=5)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# ISO-8601 date and time. Pydantic also reads "1700000000" or "1.5e9" as epoch seconds (or
# milliseconds, guessed by size); the contract says ISO text, so those are refused, as numbers are.
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


class EventIn(BaseModel):
    """One interaction. `text`, else the item's catalogue text, is what gets embedded."""

    # The schema also says that an event needs text or an item_id (a client generated from it,
    # or a fuzzer, then builds valid events).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["item_id"], "properties": {"item_id": {"type": "string"}}},
            ]
        },
    )

    event_id: Id | None = Field(
        None, description="Idempotency key; a resent event_id is stored once."
    )
    user_id: PathId
    type: str = Field(description="One of the configured event types (APP_EVENT_WEIGHTS).")
    item_id: PathId | None = None
    text: Text | None = Field(None, description="Required when there is no item_id.")
    timestamp: AwareDatetime | None = Field(None, description="ISO-8601 with zone; default now.")
    # Strict: JSON true/false or "3" is a client bug, not a weight. Bounded, so that a profile
    # sum of any number of events stays finite (app/profile/math.py).
    weight: float | None = Field(
        None,
        allow_inf_nan=False,
        strict=True,
        ge=-MAX_WEIGHT,
        le=MAX_WEIGHT,
        description=f"Overrides the type weight; at most {MAX_WEIGHT:g} in absolute value.",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        types = (info.context or {}).get("event_types")
        if types is not None and value not in types:
            raise ValueError(f"unknown event type; expected one of {sorted(types)}")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        # Pydantic would also take epoch numbers (seconds or milliseconds, guessed by size), as
        # numbers or as digit strings; the contract is ISO-8601 text with a zone, so neither is
        # guessed at.
        if isinstance(value, datetime) or value is None:
            return value
        if not isinstance(value, str) or not ISO_DATETIME.match(value):
            raise ValueError("timestamp must be ISO-8601 text with a time zone")
        return value

    @field_validator("timestamp")
    @classmethod
    def _not_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is not None and now is not None and value > now + MAX_FUTURE:
            raise ValueError("timestamp is more than 5 minutes in the future")
        # Also keeps UTC conversion in range (year 1 at +01:00 is year 0 in UTC).
        if value is not None and value < EARLIEST:
            raise ValueError("timestamp is before 1970-01-01")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> EventIn:
        if self.item_id is None and self.text is None:
            raise ValueError("an event needs text or an item_id")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)

    @field_validator("events", mode="before")
    @classmethod
    def _not_too_many(cls, value: object, info: ValidationInfo) -> object:
        return refuse_oversized(value, info, limit_key="max_events", noun="events")


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
