"""Alembic, configured in code: `python -m app migrate` upgrades to head (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from app.db.session import ensure_sqlite_directory, refuse_non_utf8

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MIGRATE_COMMAND = "python -m app migrate"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(slug)s"
    )
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision`; a no-op when it is already there. Returns the revisions
    before and after."""
    ensure_sqlite_directory(database_url)
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return before, current_revision(database_url)


def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url, poolclass=NullPool)
    refuse_non_utf8(engine)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


@lru_cache
def code_head() -> str:
    """The newest revision this code knows (read from migrations/ once per process)."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: bool  # the schema is at this code's head
    detail: str  # "at head", or what is wrong and the command that fixes it


def schema_status(connection: Connection) -> SchemaStatus:
    """Whether the database schema is the one this code needs."""
    found = MigrationContext.configure(connection).get_current_revision()
    head = code_head()
    if found == head:
        return SchemaStatus(True, "at head")
    if found is None:
        return SchemaStatus(False, f"missing (run `{MIGRATE_COMMAND}`)")
    known = {r.revision for r in ScriptDirectory.from_config(alembic_config("")).walk_revisions()}
    if found in known:
        return SchemaStatus(False, f"behind: at {found}, needs {head} (run `{MIGRATE_COMMAND}`)")
    # Migrated by newer code (a rolling deploy): this code may not know its tables.
    return SchemaStatus(False, f"unknown revision {found}: newer than this code ({head})")
