"""Exactly one trainer: a lock the operating system or database frees when its holder dies."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.db.session import Database

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x1C_4C_05_7E  # "interest-clusters trainer"


class LeaderLock:
    """PostgreSQL: a session advisory lock on a dedicated connection. SQLite: a file lock
    beside the database. Either is released the moment the holding process dies."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._db.engine.dialect.name == "postgresql":
            return self._try_advisory()
        return self._try_file()

    def still_held(self) -> bool:
        """False when the connection that holds the advisory lock is gone."""
        if self._conn is None:
            return self._fd is not None
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND objid = :key AND granted"
                ),
                {"key": ADVISORY_KEY},
            ).scalar_one()
            return bool(held)
        except SQLAlchemyError:
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                # Unlock explicitly: closing a pooled connection only hands it back to the pool,
                # session and lock alive, and a real disconnect frees the lock only once the
                # server has noticed. The connection is then discarded, not pooled.
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            with contextlib.suppress(SQLAlchemyError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor frees the flock
            self._fd = None

    def _try_advisory(self) -> bool:
        try:
            # Autocommit: the checks never leave a transaction open (a server's
            # idle_in_transaction_session_timeout would end the session and the lock with it).
            conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError:
            return False
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
            ).scalar_one()
        except SQLAlchemyError:
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _try_file(self) -> bool:
        fd = os.open(_lock_file(self._db), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True


def _lock_file(db: Database) -> Path:
    database = make_url(str(db.engine.url)).database or "memory"
    return Path(f"{database}.trainer.lock")


def trainer_present(db: Database) -> bool:
    """Whether some process holds the trainer lock now. On SQLite this takes a shared lock
    for an instant: a worker that tries to become the trainer in that instant tries again."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key "
                    "AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": ADVISORY_KEY},
            ).scalar_one()
        return bool(held)
    try:
        fd = os.open(_lock_file(db), os.O_RDONLY)
    except FileNotFoundError:
        return False  # no trainer has ever run against this database file
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # frees the shared lock, if it was taken
    return False
