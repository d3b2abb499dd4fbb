"""The train stage: partial_fit changed profiles, commit each step as a checkpoint version."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.assignment import service as assignment_service
from app.clustering.codec import dump_state, load_state
from app.clustering.generation import Proposal
from app.clustering.model import OnlineKMeans
from app.clustering.refit import RefitMark
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ModelCheckpoint
from app.db.session import Database
from app.model import repository as model_repository
from app.model.consolidation import CONSOLIDATED, ConsolidationJob, ConsolidationRunner
from app.model.generations import Generations
from app.model.refits import RefitRunner
from app.profile import repository as profile_repository

log = logging.getLogger(__name__)
__all__ = ["CONSOLIDATED", "TrainResult", "Trainer"]
REFIT = "refit"  # a new generation's checkpoint: the decision that made it


@dataclass(frozen=True)
class TrainResult:
    rows: int = 0  # profiles consumed
    version: int | None = None  # the checkpoint committed, if any
    seconds: float = 0.0
    refit: Proposal | None = None  # a refit decided in this step, adopted or not


@dataclass
class FittedStep:
    """A step fitted in memory and not committed yet: what its one write transaction needs."""

    model: OnlineKMeans  # the model after the step (a new object; the trainer's is untouched)
    versions: dict[str, int]  # user_id -> the profile version read
    fitted_rows: int = 0  # rows partial_fit (profiles with a direction)
    checkpoint: ModelCheckpoint | None = None  # None when no row had a direction
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer(Generations):
    """The leader's in-memory model; always equal to the latest committed checkpoint.

    `self.model` is never changed in place: a step fits a copy and swaps it in once its
    checkpoint is committed, so a failed commit leaves the committed model in place, and
    background passes (consolidation, evaluation, refits) may read a model without a copy."""

    def __init__(self, settings: Settings, *, embedding_model: str, dim: int) -> None:
        self.settings = settings
        self.embedding_model = embedding_model
        self.dim = dim
        self.model = self._new_model(settings.first_clusters)
        self.version = 0
        self.generation = 1
        self.ids: list[int] = list(range(self.model.n_clusters))  # public id of each centre
        self.next_id = self.model.n_clusters  # ids are never reused
        self.trained_rows = 0  # profile rows trained since this trainer started
        # The last refit try (users 0: the first one is due as soon as the model exists).
        self._mark = RefitMark(users=0, trained_rows=0, at=-math.inf)
        self.refits = RefitRunner()
        self.consolidations = ConsolidationRunner()
        # The version whose centres the last consolidation pass started from or produced: at
        # most one pass per model change, so an idle trainer does not commit versions forever.
        self.consolidated = 0
        self._consolidated_at = -math.inf  # monotonic time of the last consolidation

    def _new_model(self, clusters: int) -> OnlineKMeans:
        s = self.settings
        return OnlineKMeans(
            n_clusters=clusters,
            n_features=self.dim,
            half_life=s.model_half_life or None,
            batch_size=max(s.batch_size, clusters),
            seed=s.seed,
        )

    def restore(self, db: Database) -> None:
        """Resume from the latest checkpoint (or start fresh when there is none)."""
        with db.read() as session:
            row = model_repository.latest_checkpoint(session)
            refit_row = model_repository.latest_refit(session)
        self._mark = RefitMark(
            users=refit_row.population if refit_row else 0, trained_rows=0, at=-math.inf
        )
        self.trained_rows = 0
        if row is None:
            self.model, self.version, self.generation = (
                self._new_model(self.settings.first_clusters),
                0,
                1,
            )
            self.ids, self.next_id = list(range(self.model.n_clusters)), self.model.n_clusters
            self.consolidated = 0
            return
        self.model = load_state(
            model_repository.checkpoint_state(row),
            embedding_model=self.embedding_model,
            n_features=self.dim,
        )
        self.version, self.generation = row.version, row.generation
        self.ids, self.next_id = model_repository.checkpoint_ids(row)
        # Derived from the checkpoint, so a restart does not consolidate a consolidation again.
        self.consolidated = row.version if CONSOLIDATED in row.meta else 0
        fixed = self.settings.fixed_clusters
        if fixed and row.n_clusters != fixed:
            log.warning(
                "the model has %d clusters but APP_CLUSTERS=%d; the next refit moves to %d "
                "(or now: `python -m app recluster --k %d`)",
                row.n_clusters,
                fixed,
                fixed,
                fixed,
            )
        log.info("restored model version %d (generation %d)", row.version, row.generation)

    def step(self, db: Database) -> TrainResult:
        """One partial_fit over profiles changed since they were last trained on. When there
        are none: a finished refit is decided, else a finished consolidation is committed,
        else a due refit or consolidation is started (each in the background)."""
        started = time.perf_counter()
        decided = None
        try:
            result = self._step(db)
            if (job := self.refits.finished()) is not None:
                decided = self._decide_refit(db, job)
                if decided is not None and decided.adopted:
                    result = TrainResult(result.rows, self.version)
            elif (done := self.consolidations.finished()) is not None:
                if (version := self._commit_consolidation(db, done)) is not None:
                    result = TrainResult(result.rows, version)
            elif not (result.rows or self.background_running):
                self._start_background(db)  # decided or committed at a later step
        except Exception:
            self.restore(db)  # e.g. a recluster committed the version this step wanted
            raise
        seconds = time.perf_counter() - started
        return TrainResult(result.rows, result.version, seconds, decided)

    def _step(self, db: Database) -> TrainResult:
        """Read the changed profiles in a short read, fit outside any transaction, commit the
        checkpoint, the marks and the history in one short write."""
        s = self.settings
        with db.read() as session:
            # A recluster may have committed a new generation: adopted before training on.
            stale = (model_repository.latest_version(session) or 0) != self.version
            if not stale:
                limit = s.batch_size * s.train_step_batches
                if not self.model.fitted:
                    if profile_repository.count_untrained(session) < s.first_fit_users:
                        return TrainResult()
                    limit = max(s.batch_size, s.first_fit_users)
                rows = profile_repository.untrained_profiles(session, limit)
        if stale:
            self.restore(db)
            return self._step(db)
        fitted = self._fit(rows)
        if fitted is None:
            return TrainResult()
        with db.write() as session:
            if fitted.checkpoint is not None:
                # Before mark_trained locks profile rows (assignment_service.lock_changes).
                assignment_service.lock_changes(session)
                model_repository.add_checkpoint(session, fitted.checkpoint, keep=s.checkpoints_keep)
            marked = profile_repository.mark_trained(session, fitted.versions)
            if fitted.checkpoint is not None:  # users erased since the read get no history
                assignment_service.record(
                    session,
                    [row for row in fitted.history if row["user_id"] in marked],
                    retention_days=s.changes_retention_days,
                )
        if fitted.checkpoint is None:
            return TrainResult(rows=len(rows))
        self.model, self.version = fitted.model, fitted.checkpoint.version
        self.trained_rows += fitted.fitted_rows
        return TrainResult(rows=len(rows), version=self.version)

    def _fit(self, rows: list[tuple[str, bytes, int]]) -> FittedStep | None:
        """partial_fit a copy of the model on `rows`, batch_size rows a call (the first fit: all
        of them in one, so k-means++ sees a crowd). None: too few rows for a first fit."""
        X, kept = unit_rows([blob for _, blob, _ in rows], self.dim)
        if not self.model.fitted and len(X) < self.model.n_clusters:
            return None
        fitted = FittedStep(copy.deepcopy(self.model), {u: v for u, _, v in rows}, len(X))
        if not len(X):
            return fitted
        size = self.settings.batch_size if self.model.fitted else len(X)
        for start in range(0, len(X), size):
            fitted.model.partial_fit(X[start : start + size])
        version = self.version + 1
        fitted.checkpoint = self._checkpoint(fitted.model, version, len(X))
        distances = fitted.model.distances(X)
        labels = distances.argmin(axis=1)
        now = utcnow()
        fitted.history = [
            {
                "user_id": rows[i][0],
                "model_version": version,
                "cluster_id": self.ids[int(c)],
                "distance": float(distances[j, c]),
                "assigned_at": now,
            }
            for j, (i, c) in enumerate(zip(kept, labels, strict=True))
        ]
        return fitted

    def _start_background(self, db: Database) -> None:
        """When idle: start a due refit, else a due consolidation."""
        if self._start_refit_if_due(db) or not self._should_consolidate():
            return
        self.consolidations.start(db, self.model, version=self.version)
        self.consolidated = self.version  # tried for this version, whatever comes of it
        self._consolidated_at = time.monotonic()

    def _should_consolidate(self) -> bool:
        s = self.settings
        rested = time.monotonic() - self._consolidated_at >= s.consolidate_interval_seconds
        return s.consolidate and self.model.fitted and self.consolidated != self.version and rested

    def _commit_consolidation(self, db: Database, job: ConsolidationJob) -> int | None:
        """Commit a finished Lloyd step as a new version of this generation; None when nothing
        moved, or when the model changed while it ran (it is tried again at a later idle step).

        Mini-batch centres are count-weighted means of every snapshot they ever absorbed, stale
        and partial ones included; nothing else pulls them back to their current members
        (benchmarks/EVALUATION.md). A centre with no members keeps its place. The counts stay
        as they are: they are the weight the centre holds against future mini-batches (and what
        forgetting decays), not its member count, so the stream's learning rate and sklearn's
        low-count reassignment go on unchanged."""
        centers, members = job.future.result()
        if job.version != self.version:
            self.consolidated = 0  # moot: the stream moved on; a later idle step tries again
            return None
        if np.array_equal(centers, self.model.centers):
            return None  # no profiles, or already a fixed point: no version to commit
        model = copy.deepcopy(self.model)
        model.set_centers(centers)
        version = self.version + 1
        with db.write() as session:
            self._commit_version(session, version, 0, model=model, consolidated=members)
        self.model, self.version = model, version
        self.consolidated = version
        log.debug("consolidated into version %d over %d profiles", version, members)
        return version

    def _checkpoint(
        self,
        model: OnlineKMeans,
        version: int,
        rows: int,
        *,
        consolidated: int | None = None,
        refit: dict[str, object] | None = None,
    ) -> ModelCheckpoint:
        state = dump_state(model, embedding_model=self.embedding_model)
        meta = {
            **state.meta,
            model_repository.CLUSTER_IDS: self.ids,
            model_repository.NEXT_CLUSTER_ID: self.next_id,
        }
        # A consolidation's checkpoint says so (and over how many profiles) in its meta; a new
        # generation's carries the decision that made it.
        if consolidated is not None:
            meta[CONSOLIDATED] = consolidated
        if refit is not None:
            meta[REFIT] = refit
        return ModelCheckpoint(
            version=version,
            generation=self.generation,
            embedding_model=self.embedding_model,
            n_features=self.dim,
            n_clusters=model.n_clusters,
            meta=meta,
            centers=state.centers,
            counts=state.counts,
            trained_rows=rows,
            created_at=utcnow(),
        )

    def _commit_version(
        self, session: Session, version: int, rows: int, *, model: OnlineKMeans, **meta: Any
    ) -> None:
        checkpoint = self._checkpoint(model, version, rows, **meta)
        model_repository.add_checkpoint(session, checkpoint, keep=self.settings.checkpoints_keep)

    @property
    def refit_running(self) -> bool:
        """Whether a refit is being fitted or waits for its decision."""
        return self.refits.running

    @property
    def background_running(self) -> bool:
        """Whether a refit or a consolidation runs or waits to be decided or committed."""
        return self.refits.running or self.consolidations.running

    def close(self) -> None:
        """Stop the background threads (a running fit or pass is abandoned)."""
        self.refits.close()
        self.consolidations.close()
