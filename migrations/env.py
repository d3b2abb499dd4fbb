"""Alembic environment: the URL comes from the caller (app.db.migrate) or from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from app.config import get_settings
from app.db import models  # noqa: F401  (registers the tables on the metadata)
from app.db.base import Base
from app.db.session import refuse_non_utf8

config = context.config
url = config.attributes.get("database_url") or get_settings().database_url


def run_migrations() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    refuse_non_utf8(engine)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
