"""What a database error means for the caller: unreachable, busy, not migrated, full or
read-only (each a 503 that says so), or none of these (a bug or bad data: not the database's
fault, so not retried as if it were)."""

from __future__ import annotations

import sqlite3
from enum import StrEnum

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class Trouble(StrEnum):
    unreachable = "unreachable"
    busy = "busy"
    not_migrated = "not migrated"
    full = "full"
    read_only = "read-only"


ADVICE = {
    Trouble.unreachable: "the database is unreachable; retry later",
    Trouble.busy: "the database is busy; retry later",
    Trouble.not_migrated: "the database schema is missing or behind; run `python -m app migrate`",
    Trouble.full: "the database is full (no space left); nothing was stored",
    Trouble.read_only: "the database refuses writes (read-only)",
}

# SQLite result codes (sqlite3.Error.sqlite_errorcode, primary code in the low byte).
_SQLITE = {
    sqlite3.SQLITE_BUSY: Trouble.busy,
    sqlite3.SQLITE_LOCKED: Trouble.busy,
    sqlite3.SQLITE_READONLY: Trouble.read_only,
    sqlite3.SQLITE_FULL: Trouble.full,
    sqlite3.SQLITE_CANTOPEN: Trouble.unreachable,
    sqlite3.SQLITE_IOERR: Trouble.unreachable,
    sqlite3.SQLITE_NOTADB: Trouble.unreachable,
}
# PostgreSQL SQLSTATEs (exact codes first, then classes).
_POSTGRES = {
    "42P01": Trouble.not_migrated,  # undefined_table
    "42703": Trouble.not_migrated,  # undefined_column
    "53100": Trouble.full,  # disk_full
    "53200": Trouble.busy,  # out_of_memory
    "53300": Trouble.busy,  # too_many_connections
    "55P03": Trouble.busy,  # lock_not_available
    "57014": Trouble.busy,  # query_canceled (statement timeout)
    "40001": Trouble.busy,  # serialization_failure
    "40P01": Trouble.busy,  # deadlock_detected
    "25006": Trouble.read_only,  # read_only_sql_transaction
    "57P01": Trouble.unreachable,  # admin_shutdown
    "57P02": Trouble.unreachable,  # crash_shutdown
    "57P03": Trouble.unreachable,  # cannot_connect_now
    "08": Trouble.unreachable,  # connection_exception (class)
}


def classify(exc: BaseException) -> Trouble | None:
    """The database trouble behind `exc`, or None when it is not one."""
    if isinstance(exc, PoolTimeout):  # every pooled connection is in use
        return Trouble.busy
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in _SQLITE:
            return _SQLITE[code & 0xFF]
        message = str(orig)
        if message.startswith(("no such table", "no such column")):
            return Trouble.not_migrated
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return _POSTGRES.get(sqlstate) or _POSTGRES.get(sqlstate[:2])
    # psycopg reports a failed or lost connection with no SQLSTATE at all.
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return Trouble.unreachable
    return None


def describe(exc: BaseException) -> str:
    """A short description for logs: the error's class and code, never its parameters (which
    can carry user ids) and never more than its first line."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    first_line = str(orig).strip().splitlines()[0][:200] if str(orig).strip() else ""
    return f"{type(orig).__name__}{f' [{code}]' if code else ''}: {first_line}"
