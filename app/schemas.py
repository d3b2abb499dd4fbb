"""Request types shared by every domain: ids, texts, and the per-request batch limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field, ValidationInfo

MAX_ID = 128
MAX_TEXT = 4000

# PostgreSQL text cannot hold NUL; refusing it here keeps both backends answering alike (422).
NO_NUL = r"^[^\x00]*$"
# User and item ids are path segments of the API (`/v1/users/{user_id}`), so an id must be one:
# no `/` (servers decode %2F before routing, so such an id could never be queried or erased),
# and not `.` or `..` (clients resolve those segments away). Ingest and the paths share it.
PATH_SAFE = r"^(?:[^\x00/.][^\x00/]*|\.[^\x00/.][^\x00/]*|\.\.[^\x00/]+)$"

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)]  # event ids
PathId = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=PATH_SAFE)]  # user, item
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)]
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=PATH_SAFE)]


def refuse_oversized(value: object, info: ValidationInfo, *, limit_key: str, noun: str) -> object:
    """A batch longer than the context's limit is refused before its elements are validated,
    so an oversized batch costs nothing to refuse."""
    limit = (info.context or {}).get(limit_key)
    if isinstance(value, list) and limit is not None and len(value) > limit:
        raise ValueError(f"at most {limit} {noun} per request")
    return value
