"""Refits in the background: one job at a time on a thread, and the record of each decision."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.clustering import generation
from app.clustering.generation import Proposal
from app.clustering.model import OnlineKMeans
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ModelRefit


@dataclass(frozen=True)
class RefitJob:
    """A proposal being fitted, and the model state it will be judged against."""

    future: Future[Proposal]
    generation: int  # of the model it was started from: a newer one makes it moot
    version: int  # the version it is judged against
    population: int  # users with a profile when it started


class RefitRunner:
    """Fits proposals off the trainer's thread, so folding and training go on meanwhile."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self.job: RefitJob | None = None

    def start(
        self,
        X: np.ndarray,
        *,
        trigger: str,
        current: OnlineKMeans,
        ids: list[int],
        next_id: int,
        settings: Settings,
        generation_then: int,
        version: int,
        population: int,
    ) -> None:
        """Fit a proposal from the sample X against `current` (a copy nobody else trains)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refit")
        future = self._executor.submit(
            generation.propose,
            X,
            trigger=trigger,
            current=current,
            current_ids=ids,
            next_id=next_id,
            clusters=settings.fixed_clusters,
            seed=settings.seed,
            half_life=settings.model_half_life or None,
            batch_size=settings.batch_size,
        )
        self.job = RefitJob(future, generation_then, version, population)

    def finished(self) -> RefitJob | None:
        """The job, once its fit is done (it is then no longer held)."""
        job = self.job
        if job is None or not job.future.done():
            return None
        self.job = None
        return job

    def close(self) -> None:
        """Stop the thread (a running fit is abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.job = None


def decision(
    proposal: Proposal, *, population: int, judged: int, new_version: int | None
) -> ModelRefit:
    """The model_refit row of a decision (new_version: the version it became, if adopted)."""
    return ModelRefit(
        decided_at=utcnow(),
        trigger=proposal.trigger,
        adopted=new_version is not None,
        reason=proposal.reason,
        k=proposal.k,
        population=population,
        model_version=judged or None,
        new_version=new_version,
        details=proposal.as_meta(),
    )
