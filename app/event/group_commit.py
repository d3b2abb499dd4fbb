"""Group commit for small ingest requests: those that arrive while a write is running are
stored together by the next one, in one statement and one transaction.

A request of one event costs the server more in its own transaction (a trip to the thread
pool, a statement, a commit that waits for the disk) than in parsing it. With sixteen clients
posting single events, each write now carries the requests that queued behind the previous
one. Every request still gets its own answer, only after the commit that made its events
durable, and its own count of duplicates (the first of several requests that send the same
event_id in one group stores it; the others count it as a duplicate, as they would if they
came one after the other). A database error fails every request of the group, and none of
their events is stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.db.session import Database
from app.event import repository as event_repository
from app.event import service as event_service
from app.event.schemas import EventIn, IngestResult

# Requests with at most this many events are grouped; larger ones are a batch of their own.
SMALL_REQUEST = 16
# At most this many events per group write: one statement with a bounded number of values.
GROUP_EVENTS = 512


@dataclass
class _Waiting:
    rows: list[dict[str, Any]]  # this request's rows, repeats within it already removed
    submitted: int  # events in the request (repeats included)
    answer: asyncio.Future[IngestResult] = field(repr=False)


class GroupCommit:
    """One per process and database; used from the event loop only (no locks needed)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Waiting] = []
        self._writing = False
        self._writer: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs

    async def ingest(self, events: list[EventIn], *, now: datetime) -> IngestResult:
        """Store these events with the next group write; returns once they are committed."""
        rows = event_service.new_rows(events, now=now)
        waiting = _Waiting(rows, len(events), asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if not self._writing:
            self._writing = True
            self._writer = asyncio.get_running_loop().create_task(self._write_groups())
        return await waiting.answer

    async def _write_groups(self) -> None:
        try:
            while self._queue:
                group: list[_Waiting] = [self._queue.pop(0)]
                size = len(group[0].rows)
                while self._queue and size + len(self._queue[0].rows) <= GROUP_EVENTS:
                    size += len(self._queue[0].rows)
                    group.append(self._queue.pop(0))
                try:
                    results = await run_in_threadpool(self._store, group)
                except Exception as exc:  # every request of the group is answered with it
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                    continue
                for waiting, result in zip(group, results, strict=True):
                    if not waiting.answer.done():  # a client that went away is not waited for
                        waiting.answer.set_result(result)
        finally:
            self._writing = False

    def _store(self, group: list[_Waiting]) -> list[IngestResult]:
        """One statement for the whole group; each request's share of the new rows."""
        owner: dict[str, int] = {}  # event_id -> the first request of the group that sent it
        rows = []
        for index, waiting in enumerate(group):
            for row in waiting.rows:
                if row["event_id"] not in owner:
                    owner[row["event_id"]] = index
                    rows.append(row)
        with self._db.write_statement() as session:
            stored = event_repository.insert_new_returning(session, rows)
        accepted = [0] * len(group)
        for event_id in stored:
            accepted[owner[event_id]] += 1
        return [
            IngestResult(accepted=n, duplicates=waiting.submitted - n)
            for waiting, n in zip(group, accepted, strict=True)
        ]
