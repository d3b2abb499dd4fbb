"""Consolidation: one Lloyd iteration over every current profile, on a thread of its own, so a
million profiles read page by page never stall the folding loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from app.clustering.fitting import lloyd_step
from app.clustering.model import OnlineKMeans
from app.clustering.vectors import unit_rows
from app.db.session import Database
from app.model.background import BackgroundRunner
from app.profile import repository as profile_repository

CONSOLIDATED = "consolidated_profiles"  # checkpoint meta key of a consolidation's version
CONSOLIDATE_PAGE = 10_000  # profiles read at a time (bounded memory)


class Cancelled(Exception):
    """The pass was stopped (the worker is shutting down or lost the lead)."""


def lloyd_over_profiles(
    db: Database, model: OnlineKMeans, stop: threading.Event | None = None
) -> tuple[np.ndarray, int]:
    """The centres one Lloyd step moves `model`'s to, and how many profiles it read. Only
    profiles and centres are read, in user_id order, so the result is deterministic."""
    return lloyd_step(model, _pages(db, model.n_features, stop or threading.Event()))


def _pages(db: Database, dim: int, stop: threading.Event) -> Iterator[np.ndarray]:
    """Every profile as unit rows, one short read per page (no transaction spans the pass)."""
    after: str | None = None
    while True:
        if stop.is_set():  # checked per page: a process that stops is not held up minutes
            raise Cancelled
        with db.read() as session:
            page = profile_repository.page(session, after=after, limit=CONSOLIDATE_PAGE)
        if not page:
            return
        after = page[-1][0]
        yield unit_rows([blob for _, blob in page], dim)[0]


@dataclass(frozen=True)
class ConsolidationJob:
    future: Future[tuple[np.ndarray, int]]
    version: int  # the version whose centres it started from: only that version may take it


class ConsolidationRunner(BackgroundRunner[ConsolidationJob]):
    """One pass at a time on a thread; the trainer commits its result at a later step."""

    def __init__(self) -> None:
        super().__init__("consolidate")
        self._stop = threading.Event()

    def start(self, db: Database, model: OnlineKMeans, *, version: int) -> None:
        """Compute a Lloyd step from `model` (never changed in place: the trainer swaps in new
        model objects, so this one stays the state of `version`)."""
        self.job = ConsolidationJob(
            self.submit(lloyd_over_profiles, db, model, self._stop), version
        )

    def close(self) -> None:
        """Stop the thread; a running pass ends at its next page."""
        self._stop.set()
        self._stop = threading.Event()  # a pass started later is not stopped by this close
        super().close()
