"""Request dependencies as `Annotated` aliases, so handler signatures read like prose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import Database


# The two lookups are async: they never block, and a plain `def` dependency would cost a trip
# to the thread pool on every request.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.db


def read_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.read() as session:
        yield session


def write_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """Commits after the handler returns and before the response leaves: 2xx means durable."""
    with db.write() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
