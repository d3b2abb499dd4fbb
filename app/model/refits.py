"""Refits in the background: one job at a time on a thread, and the record of each decision."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from app.clustering import generation
from app.clustering.generation import Proposal
from app.clustering.model import OnlineKMeans
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ModelRefit
from app.model.background import BackgroundRunner


@dataclass(frozen=True)
class RefitJob:
    """A proposal being fitted, and the model state it will be judged against."""

    future: Future[Proposal]
    generation: int  # of the model it was started from: a newer one makes it moot
    version: int  # the version it is judged against
    population: int  # users with a profile when it started


class RefitRunner(BackgroundRunner[RefitJob]):
    """Fits proposals off the trainer's thread, so folding and training go on meanwhile."""

    def __init__(self) -> None:
        super().__init__("refit")

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
        future = self.submit(
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
