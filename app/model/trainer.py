"""The train stage: partial_fit changed profiles, commit each step as a checkpoint version."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.clustering.codec import dump_state, load_state
from app.clustering.fitting import fit_multi_start, lloyd_step
from app.clustering.model import OnlineKMeans
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ModelCheckpoint
from app.db.session import Database
from app.model import repository as model_repository
from app.profile import repository as profile_repository

log = logging.getLogger(__name__)
CONSOLIDATED = "consolidated_profiles"  # checkpoint meta key of a consolidation's version
CONSOLIDATE_PAGE = 10_000  # profiles read at a time by the consolidation pass (bounded memory)


@dataclass(frozen=True)
class TrainResult:
    rows: int = 0  # profiles consumed
    version: int | None = None  # the checkpoint committed, if any
    seconds: float = 0.0


class Trainer:
    """The leader's in-memory model; always equal to the latest committed checkpoint."""

    def __init__(self, settings: Settings, *, embedding_model: str, dim: int) -> None:
        self.settings = settings
        self.embedding_model = embedding_model
        self.dim = dim
        self.model = self._new_model(settings.clusters)
        self.version = 0
        self.generation = 1
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
        if row is None:
            self.model, self.version, self.generation = (
                self._new_model(self.settings.clusters),
                0,
                1,
            )
            self.consolidated = 0
            return
        self.model = load_state(
            model_repository.checkpoint_state(row),
            embedding_model=self.embedding_model,
            n_features=self.dim,
        )
        self.version, self.generation = row.version, row.generation
        # Derived from the checkpoint, so a restart does not consolidate a consolidation again.
        self.consolidated = row.version if CONSOLIDATED in row.meta else 0
        if row.n_clusters != self.settings.clusters:
            log.warning(
                "the model has %d clusters but APP_CLUSTERS=%d; it keeps %d until "
                "`python -m app recluster --k %d`",
                row.n_clusters,
                self.settings.clusters,
                row.n_clusters,
                self.settings.clusters,
            )
        log.info("restored model version %d (generation %d)", row.version, row.generation)

    def step(self, db: Database) -> TrainResult:
        """One partial_fit over profiles changed since they were last trained on; when there are
        none and the model changed since the last consolidation, a consolidation instead."""
        started = time.perf_counter()
        with db.read() as session:
            latest = model_repository.latest_version(session) or 0
        if latest != self.version:  # a recluster committed a new generation: adopt it now
            self.restore(db)
        try:
            result = self._step(db)
            if not result.rows and self._should_consolidate():
                result = TrainResult(version=self._consolidate(db))
        except Exception:
            self.restore(db)  # the in-memory model may be ahead of what was committed
            raise
        return TrainResult(result.rows, result.version, time.perf_counter() - started)

    def _step(self, db: Database) -> TrainResult:
        s = self.settings
        with db.write() as session:
            limit = s.batch_size
            if not self.model.fitted:
                if profile_repository.count_untrained(session) < s.min_users_first_fit:
                    return TrainResult()
                limit = max(s.batch_size, s.min_users_first_fit)
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
                model_repository.add_history(
                    session,
                    [
                        {
                            "user_id": rows[i][0],
                            "model_version": version,
                            "cluster_id": int(c),
                            "distance": float(distances[j, c]),
                            "assigned_at": now,
                        }
                        for j, (i, c) in enumerate(zip(kept, labels, strict=True))
                    ],
                )
            profile_repository.mark_trained(session, [user_id for user_id, _, _ in rows])
        if version is not None:
            self.version = version
        return TrainResult(rows=len(rows), version=version)

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
        self, session: Session, version: int, rows: int, *, consolidated: int | None = None
    ) -> None:
        state = dump_state(self.model, embedding_model=self.embedding_model)
        # A consolidation's checkpoint says so (and over how many profiles) in its meta.
        meta = state.meta if consolidated is None else {**state.meta, CONSOLIDATED: consolidated}
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
        """A new generation trained from all current profiles, swapped in as one new version."""
        with db.read() as session:
            rows = profile_repository.sample(session, limit=10**9)  # every profile
        X, _ = unit_rows([blob for _, blob in rows], self.dim)
        if len(X) < clusters:
            raise ValueError(f"need at least {clusters} users with profiles, have {len(X)}")
        s = self.settings
        # Fitted outside the write transaction.
        model = fit_multi_start(
            X,
            n_clusters=clusters,
            half_life=s.model_half_life or None,
            batch_size=max(s.batch_size, clusters),
            seed=s.seed,
        )
        with db.write() as session:
            previous, self.model = self.model, model
            try:
                self.generation += 1
                version = (model_repository.latest_version(session) or 0) + 1
                self._commit_version(session, version, len(X))
            except Exception:
                self.model, self.generation = previous, self.generation - 1
                raise
        self.version = version
        return version
