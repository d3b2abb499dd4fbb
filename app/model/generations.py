"""The trainer's generations: refits started in the background and decided, a proposal
adopted as a new generation, and the operator's recluster."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.orm import Session

from app.clustering import generation
from app.clustering.generation import Proposal
from app.clustering.model import OnlineKMeans
from app.clustering.refit import RefitMark, refit_trigger
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.session import Database
from app.model import repository as model_repository
from app.model.refits import RefitJob, RefitRunner, decision
from app.profile import repository as profile_repository

log = logging.getLogger(__name__)


class Generations:
    """The refit side of `app.model.trainer.Trainer` (its base class), which holds the state."""

    settings: Settings
    dim: int
    model: OnlineKMeans
    version: int
    generation: int
    ids: list[int]
    next_id: int
    trained_rows: int
    refits: RefitRunner
    _mark: RefitMark

    def _commit_version(
        self, session: Session, version: int, rows: int, *, model: OnlineKMeans, **meta: Any
    ) -> None:
        raise NotImplementedError  # the trainer's

    def _start_refit_if_due(self, db: Database) -> bool:
        """Start a refit in the background when one is due (app/clustering/refit.py)."""
        s = self.settings
        now = time.monotonic()
        if not (s.refit and self.model.fitted) or now - self._mark.at < s.refit_interval_seconds:
            return False
        with db.read() as session:
            population = profile_repository.count(session)
            trigger = refit_trigger(
                last=self._mark,
                users=population,
                trained_rows=self.trained_rows,
                now=now,
                min_interval=s.refit_interval_seconds,
            )
            if trigger is None:
                return False
            rows = sorted(profile_repository.sample(session, limit=s.refit_sample_size))
        self._mark = RefitMark(users=population, trained_rows=self.trained_rows, at=now)
        X, _ = unit_rows([blob for _, blob in rows], self.dim)
        if len(X) < self.model.n_clusters:
            return False
        self.refits.start(
            X,
            trigger=trigger,
            current=self.model,  # never changed in place: the stream swaps in new models
            ids=list(self.ids),
            next_id=self.next_id,
            settings=s,
            generation_then=self.generation,
            version=self.version,
            population=population,
        )
        log.info("refit (%s) started on %d of %d profiles", trigger, len(X), population)
        return True

    def _decide_refit(self, db: Database, job: RefitJob) -> Proposal | None:
        """Adopt a finished refit's generation if it was better, and record the decision."""
        try:
            proposal = job.future.result()
        except Exception:
            log.exception("refit failed; the model is unchanged")
            return None
        if job.generation != self.generation:  # an operator's recluster came first
            log.info(
                "refit (%s) dropped: generation %d replaced it", proposal.trigger, self.generation
            )
            return None
        if proposal.adopted:
            version = self._adopt(db, proposal, population=job.population, judged=job.version)
            log.info(
                "refit (%s) adopted as version %d (k=%d): %s",
                proposal.trigger,
                version,
                proposal.k,
                proposal.reason,
            )
        else:
            with db.write() as session:
                model_repository.add_refit(
                    session,
                    decision(
                        proposal, population=job.population, judged=job.version, new_version=None
                    ),
                )
            log.info("refit (%s) not adopted: %s", proposal.trigger, proposal.reason)
        return proposal

    def _adopt(self, db: Database, proposal: Proposal, *, population: int, judged: int) -> int:
        """Commit the proposal's model as a new generation (one version), its decision with it."""
        previous = (self.model, self.ids, self.next_id, self.generation)
        with db.write() as session:
            try:
                self.model, self.ids = proposal.model, list(proposal.matching.ids)
                self.next_id = max(self.next_id, max(self.ids) + 1)
                self.generation += 1
                version = (model_repository.latest_version(session) or 0) + 1
                rows = proposal.sample_size
                self._commit_version(
                    session, version, rows, model=proposal.model, refit=proposal.as_meta()
                )
                model_repository.add_refit(
                    session,
                    decision(proposal, population=population, judged=judged, new_version=version),
                )
            except Exception:
                self.model, self.ids, self.next_id, self.generation = previous
                raise
        self.version = version
        return version

    def recluster(self, db: Database, *, clusters: int) -> int:
        """A new generation trained from all current profiles, swapped in as one new version;
        its clusters keep the ids of the clusters they continue."""
        with db.read() as session:
            rows = sorted(profile_repository.sample(session, limit=10**9))  # every profile
            population = len(rows)
        X, _ = unit_rows([blob for _, blob in rows], self.dim)
        if len(X) < clusters:
            raise ValueError(f"need at least {clusters} users with profiles, have {len(X)}")
        s = self.settings
        # Fitted outside the write transaction.
        proposal = generation.propose(
            X,
            trigger="recluster",
            current=self.model if self.model.fitted else None,
            current_ids=list(self.ids),
            next_id=self.next_id,
            clusters=clusters,
            seed=s.seed,
            half_life=s.model_half_life or None,
            batch_size=s.batch_size,
            held_out=False,
            report_rows=s.refit_sample_size,
        )
        return self._adopt(db, proposal, population=population, judged=self.version)
