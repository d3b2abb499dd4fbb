"""Engines and sessions. SQLite runs in WAL mode so the API and a worker write side by side."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Result,
    Select,
    TextClause,
    any_,
    bindparam,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql._typing import _ColumnExpressionArgument

from app.db.errors import Trouble, classify

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Values per `IN (...)` list: a statement's bound parameters stay bounded however many rows a
# step touches.
IN_CHUNK = 4096
T = TypeVar("T")
PROBE_BUSY_TIMEOUT_MS = 2_000  # a readiness probe answers "busy" rather than wait 30 s


class UnsupportedDatabaseError(RuntimeError):
    """The database answers but cannot hold this service's data as it is set up."""


def refuse_non_utf8(engine: Engine) -> None:
    """PostgreSQL: every connection to a database whose encoding is not UTF8 fails with a
    message that says how to fix it. (On SQL_ASCII psycopg returns text as bytes and
    SQLAlchemy fails deep inside with "cannot use a string pattern on a bytes-like object".)"""
    if engine.dialect.name != "postgresql":
        return

    # insert=True: before SQLAlchemy's own first query on the connection, which is the one
    # that fails on bytes.
    @event.listens_for(engine, "connect", insert=True)
    def _check_encoding(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        encoding = dbapi_connection.info.parameter_status("server_encoding")
        if encoding == "UTF8":
            return
        name = dbapi_connection.info.dbname
        dbapi_connection.close()
        raise UnsupportedDatabaseError(
            f"PostgreSQL database {name!r} has encoding {encoding}; interest-clusters needs "
            f"UTF8. Create it with CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0 "
            "(or `createdb -E UTF8 -T template0`, or initdb -E UTF8 for a new cluster)."
        )


def create_db_engine(url: str) -> Engine:
    """One engine per process; SQLite gets WAL, a busy timeout and explicit BEGINs."""
    parsed = make_url(url)
    ensure_sqlite_directory(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping: it is a round trip per checkout. A connection that died is invalidated
        # on its first error (answered 503) and replaced at the next checkout.
        engine = create_engine(
            url,
            # Error messages and logs never carry bound values: they are user and item ids.
            hide_parameters=True,
            pool_recycle=1800,
            pool_size=10,
            max_overflow=20,
            connect_args={"connect_timeout": 5},
        )
        refuse_non_utf8(engine)
        return engine

    busy_ms = sqlite_busy_timeout_ms(url)
    engine = create_engine(
        url,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Writers take the lock up front: a deferred transaction that upgrades to a write
        # fails at once with SQLITE_BUSY instead of waiting out the busy timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def sqlite_busy_timeout_ms(url: str | URL) -> int:
    """How long a SQLite connection waits for the write lock: the URL's `timeout` (seconds,
    as sqlite3 takes it) where given, else SQLITE_BUSY_TIMEOUT_MS."""
    timeout = make_url(url).query.get("timeout")
    return SQLITE_BUSY_TIMEOUT_MS if timeout is None else round(float(str(timeout)) * 1000)


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the file but not its folder (the default lives under ./var/)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@dataclass
class WriteHealth:
    """How the last write of this process ended: for /readyz, which cannot see a full disk or a
    read-only database by reading."""

    trouble: Trouble | None = None
    failed_at: float | None = None  # monotonic

    def record(self, exc: BaseException | None) -> None:
        if exc is None:
            self.trouble, self.failed_at = None, None
            return
        trouble = classify(exc)
        if trouble is not None:
            self.trouble, self.failed_at = trouble, time.monotonic()


class Database:
    """The engine plus two session factories: readers, and writers (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        # PostgreSQL readers run in autocommit: no BEGIN/ROLLBACK round trips around queries
        # that are one statement (SQLite's are in-process and cost nothing).
        reader = self.engine
        if not is_sqlite(self.engine):
            reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read_engine = reader
        self._reader = sessionmaker(reader, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        self.write_health = WriteHealth()
        # SQLite: this process's writers queue here, in arrival order, rather than in SQLite's
        # busy handler, which sleeps 1, 2, 5 ... 100 ms between tries (a writer that finds the
        # lock taken waits for the next try, however soon the lock was freed: p99 of single-
        # event ingest ~0.9 s, against ~0.2 s queued here). Re-entrant: a nested write (none
        # is meant to exist) waits in SQLite as before instead of deadlocking.
        self._write_turn = threading.RLock() if is_sqlite(self.engine) else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection for hot read paths: no ORM session to build and tear down."""
        with self._read_engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back on error."""
        with self._health_recorded(), self._write_turn, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def write_statement(self) -> Iterator[Session]:
        """A unit of work that is one statement (ingest): on PostgreSQL it runs in autocommit,
        so the statement is its own transaction and is durable when it returns, in one round
        trip instead of three (BEGIN, statement, COMMIT). SQLite: as `write`."""
        if is_sqlite(self.engine):
            with self.write() as session:
                yield session
            return
        with self._health_recorded(), self._reader() as session:  # the autocommit engine
            yield session

    @contextmanager
    def _health_recorded(self) -> Iterator[None]:
        """Every write's outcome, committed or failed, feeds the readiness check."""
        try:
            yield
        except Exception as exc:
            self.write_health.record(exc)
            raise
        self.write_health.record(None)

    @contextmanager
    def probe(self) -> Iterator[Session]:
        """A write transaction that is always rolled back, waiting at most a moment for
        SQLite's write lock: for readiness checks that must write to know they can."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection if is_sqlite(self.engine) else None
            if raw is not None:  # set on the driver, before SQLAlchemy's BEGIN IMMEDIATE
                raw.execute(f"PRAGMA busy_timeout={PROBE_BUSY_TIMEOUT_MS}")
            try:
                with Session(bind=conn.execution_options(sqlite_begin="IMMEDIATE")) as session:
                    try:
                        yield session
                    finally:
                        session.rollback()
            finally:
                if raw is not None:
                    raw.execute(f"PRAGMA busy_timeout={sqlite_busy_timeout_ms(self.engine.url)}")

    def dispose(self) -> None:
        self.engine.dispose()


def in_chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most IN_CHUNK, one per bounded `IN` list."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def one_of(
    session: Session, column: _ColumnExpressionArgument[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`column IN (values)`. On PostgreSQL one array parameter (`column = ANY(:array)`): the
    statement's text is the same whatever the number of values, so it is parsed and cached
    once, not once per batch as an expanded `IN` list of a thousand parameters is. Callers
    keep `values` within IN_CHUNK (SQLite's lists are expanded)."""
    element = cast(ColumnElement[Any], column)
    if session.get_bind().dialect.name == "postgresql":
        return element == any_(bindparam(None, list(values), type_=ARRAY(element.type)))
    return element.in_(values)


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (typed: `Session.execute` returns a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


def fetch_rows(session: Session, statement: Select[*tuple[Any, ...]] | TextClause) -> list[Any]:
    """All rows of a read that moves many blobs. PostgreSQL answers in its binary format: the
    text one sends each 3 KB profile sum as 6 KB of hex, and decoding it cost ~2/3 of the read."""
    if session.get_bind().dialect.name != "postgresql":
        return [tuple(row) for row in session.execute(statement)]
    compiled = statement.compile(dialect=session.get_bind().dialect)
    raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
    with raw.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)  # type: ignore[arg-type]
        return cursor.fetchall()


def dialect_insert(session: Session, model: type) -> Any:
    """`INSERT` with the dialect's ON CONFLICT support (SQLite and PostgreSQL share the API)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(model)
    return sqlite_insert(model)
