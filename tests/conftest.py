"""Shared fixtures: a real database per test run, built by the migrations.

Every test that takes `db` runs on a SQLite file and again on PostgreSQL when
TEST_DATABASE_URL is set (CI sets it): each run creates its own database beside that one
and drops it at the end. Tables are emptied between tests.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings, load_settings
from app.db.base import Base
from app.db.migrate import upgrade
from app.db.session import Database
from app.embedding import service as embedding_service
from app.embedding.embedder import Embedder, load_embedder
from app.main import create_app

BACKENDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A `postgres_only` test has no SQLite cell: deselected, not reported as a skip (a skip
    would read as "PostgreSQL did not run" even when its cell ran and passed)."""
    dropped = [
        item
        for item in items
        if item.get_closest_marker("postgres_only")
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("database_url") == "sqlite"
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@contextmanager
def private_postgres_database(base_url: str, *, encoding: str = "") -> Iterator[str]:
    """A fresh database beside TEST_DATABASE_URL's, so concurrent test runs never collide
    (with `encoding`, e.g. SQL_ASCII: what `createdb -E SQL_ASCII -T template0` makes)."""
    base = make_url(base_url)
    name = f"{base.database}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    options = f" ENCODING '{encoding}' TEMPLATE template0" if encoding else ""
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{options}'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database built by the migrations for the whole run, one per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade(url)
        yield url
        return
    base_url = os.environ.get("TEST_DATABASE_URL", "")
    if not base_url:
        pytest.skip("PostgreSQL cell: TEST_DATABASE_URL is not set")
    with private_postgres_database(base_url) as url:
        upgrade(url)
        yield url


def empty_tables(database: Database) -> None:
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.write() as session:
        if database.engine.dialect.name == "postgresql":
            session.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY"))
        else:
            for name in names:
                session.execute(text(f"DELETE FROM {name}"))
    embedding_service.forget(database)  # its vectors are gone from the table


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_tables(database)
    yield database
    database.dispose()


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "worker": "off",
            "api_keys": {},
            "consolidate_interval_seconds": 0,  # tests step the trainer faster than a minute
            # Refits run in the background and add versions: the tests about them turn them on.
            "refit": False,
            # One batch per step, so tests count versions in batch_size rows; steps of many
            # batches have their own test (tests/model/test_trainer.py).
            "train_step_batches": 1,
            # The session `embedder` (PyTorch) is what tests compare the service's vectors
            # with; the other backends have their own tests (tests/embedding/test_backends.py).
            "embedding_backend": "torch",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def make_client(
    db: Database, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., TestClient]]:
    """Start the real app (lifespan included) against the test database."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (configure_logging changes it process-wide)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False
    logging.getLogger("sentence_transformers").setLevel(logging.NOTSET)
    logging.captureWarnings(False)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model, loaded once per test process."""
    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
