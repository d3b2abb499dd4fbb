"""The train stage: partial_fit changed profiles, commit each step as a checkpoint version."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.assignment import service as assignment_service
from app.clustering import generation
from app.clustering.codec import dump_state, load_state
from app.clustering.fitting import lloyd_step
from app.clustering.generation import Proposal
from app.clustering.model import OnlineKMeans
from app.clustering.refit import RefitMark, refit_trigger
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ModelCheckpoint
from app.db.session import Database
from app.model import repository as model_repository
from app.model.refits import RefitJob, RefitRunner, decision
from app.profile import repository as profile_repository

log = logging.getLogger(__name__)
CONSOLIDATED = "consolidated_profiles"  # checkpoint meta key of a consolidation's version
CONSOLIDATE_PAGE = 10_000  # profiles read at a time by the consolidation pass (bounded memory)
REFIT = "refit"  # a new generation's checkpoint: the decision that made it


@dataclass(frozen=True)
class TrainResult:
    rows: int = 0  # profiles consumed
    version: int | None = None  # the checkpoint committed, if any
    seconds: float = 0.0
    refit: Proposal | None = None  # a refit decided in this step, adopted or not


class Trainer:
    """The leader's in-memory model; always equal to the latest committed checkpoint."""

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
        are none: a finished refit is decided, else a due one is started (in the background),
        else a consolidation runs if the model changed since the last one."""
        started = time.perf_counter()
        with db.read() as session:
            latest = model_repository.latest_version(session) or 0
        if latest != self.version:  # a recluster committed a new generation: adopt it now
            self.restore(db)
        decided = None
        try:
            result = self._step(db)
            if (job := self.refits.finished()) is not None:
                decided = self._decide_refit(db, job)
                if decided is not None and decided.adopted:
                    result = TrainResult(result.rows, self.version)
            elif not result.rows:
                # a refit started now runs in the background and is decided at a later step
                started_refit = self.refits.job is None and self._start_refit_if_due(db)
                if not started_refit and self._should_consolidate():
                    result = TrainResult(version=self._consolidate(db))
        except Exception:
            self.restore(db)  # the in-memory model may be ahead of what was committed
            raise
        seconds = time.perf_counter() - started
        return TrainResult(result.rows, result.version, seconds, decided)

    def _step(self, db: Database) -> TrainResult:
        s = self.settings
        with db.write() as session:
            limit = s.batch_size
            if not self.model.fitted:
                if profile_repository.count_untrained(session) < s.first_fit_users:
                    return TrainResult()
                limit = max(s.batch_size, s.first_fit_users)
            rows = profile_repository.untrained_profiles(session, limit)
            X, kept = unit_rows([blob for _, blob, _ in rows], self.dim)
            if not self.model.fitted and len(X) < self.model.n_clusters:
                return TrainResult()
            version = None
            if len(X):
                self.model.partial_fit(X)
                version = self.version + 1
                self._commit_version(session, version, len(X))
                distances = self.model.distances(X)
                labels = distances.argmin(axis=1)
                now = utcnow()
                assignment_service.record(
                    session,
                    [
                        {
                            "user_id": rows[i][0],
                            "model_version": version,
                            "cluster_id": self.ids[int(c)],
                            "distance": float(distances[j, c]),
                            "assigned_at": now,
                        }
                        for j, (i, c) in enumerate(zip(kept, labels, strict=True))
                    ],
                    retention_days=s.changes_retention_days,
                )
            profile_repository.mark_trained(session, [user_id for user_id, _, _ in rows])
        if version is not None:
            self.version = version
            self.trained_rows += len(X)
        return TrainResult(rows=len(rows), version=version)

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
        current = load_state(
            dump_state(self.model, embedding_model=self.embedding_model),
            embedding_model=self.embedding_model,
            n_features=self.dim,
        )  # a frozen copy: the stream goes on training self.model meanwhile
        self.refits.start(
            X,
            trigger=trigger,
            current=current,
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
                self._commit_version(session, version, rows, refit=proposal.as_meta())
                model_repository.add_refit(
                    session,
                    decision(proposal, population=population, judged=judged, new_version=version),
                )
            except Exception:
                self.model, self.ids, self.next_id, self.generation = previous
                raise
        self.version = version
        return version

    def _should_consolidate(self) -> bool:
        s = self.settings
        rested = time.monotonic() - self._consolidated_at >= s.consolidate_interval_seconds
        return s.consolidate and self.model.fitted and self.consolidated != self.version and rested

    def _consolidate(self, db: Database) -> int | None:
        """One Lloyd iteration: each centre moves to the mean of the current profiles nearest
        it, and is committed as a new version of this generation (None when nothing moved).

        Mini-batch centres are count-weighted means of every snapshot they ever absorbed, stale
        and partial ones included; nothing else pulls them back to their current members
        (benchmarks/EVALUATION.md). A centre with no members keeps its place. The counts stay
        as they are: they are the weight the centre holds against future mini-batches (and what
        forgetting decays), not its member count, so the stream's learning rate and sklearn's
        low-count reassignment go on unchanged. Only profiles and centres are read, in user_id
        order, so the result is deterministic and a restored trainer resumes bit-identically."""
        with db.read() as session:
            centers, members = lloyd_step(self.model, self._profile_pages(session))
        self.consolidated = self.version  # tried for this version, whatever the outcome
        self._consolidated_at = time.monotonic()
        if np.array_equal(centers, self.model.centers):
            return None  # no profiles, or already a fixed point: no version to commit
        with db.write() as session:
            self.model.set_centers(centers)
            version = self.version + 1
            self._commit_version(session, version, 0, consolidated=members)
        self.version = self.consolidated = version
        log.debug("consolidated into version %d over %d profiles", version, members)
        return version

    def _profile_pages(self, session: Session) -> Iterator[np.ndarray]:
        """Every profile as unit rows, CONSOLIDATE_PAGE at a time, in user_id order."""
        after: str | None = None
        while page := profile_repository.page(session, after=after, limit=CONSOLIDATE_PAGE):
            after = page[-1][0]
            yield unit_rows([blob for _, blob in page], self.dim)[0]

    def _commit_version(
        self,
        session: Session,
        version: int,
        rows: int,
        *,
        consolidated: int | None = None,
        refit: dict[str, object] | None = None,
    ) -> None:
        state = dump_state(self.model, embedding_model=self.embedding_model)
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
        checkpoint = ModelCheckpoint(
            version=version,
            generation=self.generation,
            embedding_model=self.embedding_model,
            n_features=self.dim,
            n_clusters=self.model.n_clusters,
            meta=meta,
            centers=state.centers,
            counts=state.counts,
            trained_rows=rows,
            created_at=utcnow(),
        )
        model_repository.add_checkpoint(session, checkpoint, keep=self.settings.checkpoints_keep)

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

    @property
    def refit_running(self) -> bool:
        """Whether a refit is being fitted or waits for its decision."""
        return self.refits.job is not None

    def close(self) -> None:
        """Stop the refit thread (a running fit is abandoned)."""
        self.refits.close()
