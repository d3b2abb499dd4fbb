"""The worker loop. Every process folds profiles; the one holding the leader lock also trains."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from app.assignment import service as assignment_service
from app.clustering.model import OnlineKMeans
from app.config import Settings
from app.db.session import Database, UnsupportedDatabaseError
from app.embedding.embedder import Embedder, EmbedderError, configured_embedder
from app.model import cluster_map
from app.model.background import BackgroundRunner
from app.model.evaluation import evaluate
from app.model.trainer import Trainer
from app.observability import metrics
from app.profile import service as profile_service
from app.recommend import rankings
from app.worker.leader import LeaderLock
from app.worker.retry import Retry

log = logging.getLogger(__name__)
INLINE_NICENESS = 10  # an inline worker yields the CPU to the API it shares a process with


@dataclass(frozen=True)
class EvaluationJob:
    future: Future[dict[str, int]]  # the user -> cluster id map the evaluation saw


class Worker:
    def __init__(self, settings: Settings, db: Database, *, inline: bool = False) -> None:
        self.settings = settings
        self.inline = inline  # in the API process: encode on fewer cores
        self.db = db
        self.embedder: Embedder | None = None
        self.trainer: Trainer | None = None
        self.leader = LeaderLock(db)
        self.stop_event = threading.Event()
        self._evaluated_version = 0
        self._evaluated_at = 0.0
        self._last_assignment: dict[str, int] | None = None
        # Evaluations run on a thread of their own, so sampling and scoring never stall folding.
        self._evaluations: BackgroundRunner[EvaluationJob] = BackgroundRunner("evaluate")
        self._ranked_version = 0
        self._ranked_at = -math.inf
        self.load_error: str | None = None
        self.retry = Retry()
        self._first_step_logged = False
        self._taken_up_to: int | None = None  # see profile_service.StepResult

    @property
    def ready(self) -> bool:
        return self.embedder is not None

    @property
    def model_status(self) -> str:
        """For /readyz: loading, loaded, or why the model could not be loaded."""
        if self.load_error:
            return f"failed: {self.load_error}"
        return "loaded" if self.ready else "loading"

    def progress_status(self) -> str:
        """For /readyz: "ok", or how long every step has been failing."""
        return self.retry.status(stall_seconds=self.settings.worker_stall_seconds)

    def run(self) -> None:
        """Loop until stopped; errors are logged and retried, never fatal."""
        if self.inline:
            # Below the API's threads: Linux schedules threads, not processes, and the
            # encoder's own threads, started from this one, inherit its niceness.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INLINE_NICENESS)
        # Loading takes from seconds to half a minute on a busy machine: say so, then how long.
        log.info("worker loading the embedding model %s ...", self.settings.embedding_model)
        started = time.monotonic()
        try:
            self.embedder = configured_embedder(self.settings, inline=self.inline)
        except EmbedderError as exc:
            self.load_error = str(exc)
            log.error("worker cannot start: %s", exc)
            return
        log.info(
            "worker ready: %s (%d-d, %s threads), loaded in %.1f s",
            self.embedder.model_id,
            self.embedder.dim,
            getattr(self.embedder, "threads", "?"),
            time.monotonic() - started,
        )
        metrics.WORKER_READY.set(1)  # the container health check waits for this
        try:
            while not self.stop_event.is_set():
                wait = self.settings.poll_interval_seconds
                try:
                    busy = self.run_once()
                    self.retry.succeeded()
                except UnsupportedDatabaseError:
                    raise  # a setup error, not a hiccup: retrying cannot fix it
                except Exception as exc:
                    busy, wait = False, self.retry.failed(exc)
                if not busy:
                    self.stop_event.wait(wait)
        finally:
            metrics.WORKER_READY.set(0)
            if self.trainer is not None:
                self.trainer.close()
            self._evaluations.close()
            self.leader.release()

    def run_once(self) -> bool:
        """One round: a profile step, then (when leader) a train step and a due evaluation."""
        assert self.embedder is not None
        first = not self._first_step_logged
        if first:  # logged once, even if this step fails and is retried
            self._first_step_logged = True
            log.info("worker first profile step: up to %d events", self.settings.batch_size)
        started = time.monotonic()
        step = profile_service.apply_pending(
            self.db, self.embedder, self.settings, after=self._taken_up_to
        )
        self._taken_up_to = step.taken_up_to
        if first:
            log.info(
                "worker first profile step done in %.1f s: %d events applied, %d texts encoded",
                time.monotonic() - started,
                step.applied,
                step.encoded,
            )
        metrics.record_profile_step(
            applied=step.applied, encoded=step.encoded, encode_seconds=step.encode_seconds
        )
        trained = 0
        leading = self._lead()
        metrics.IS_TRAINER.set(int(leading))
        if leading:
            assert self.trainer is not None
            result = self.trainer.step(self.db)
            metrics.record_train_step(rows=result.rows, seconds=result.seconds)
            if result.refit is not None:
                metrics.record_refit(trigger=result.refit.trigger, adopted=result.refit.adopted)
            metrics.REFIT_RUNNING.set(int(self.trainer.refit_running))
            trained = result.rows
            self._evaluate_if_due()
        return bool(step.applied or step.quarantined or step.taken_up_to is not None or trained)

    def _lead(self) -> bool:
        if self.trainer is not None and not self.leader.still_held():
            log.warning("lost the trainer lock; standing by")
            self.trainer.close()
            self.trainer = None
        if self.trainer is None and self.leader.try_acquire():
            assert self.embedder is not None
            trainer = Trainer(
                self.settings, embedding_model=self.embedder.space_id, dim=self.embedder.dim
            )
            trainer.restore(self.db)
            self.trainer = trainer
            log.info("this worker is now the trainer (model version %d)", trainer.version)
        return self.trainer is not None

    @property
    def settled(self) -> bool:
        """Whether no background work (evaluation, refit, consolidation) is running or waits
        for a later round to record it."""
        trainer_busy = self.trainer is not None and self.trainer.background_running
        return not self._evaluations.running and not trainer_busy

    def _evaluate_if_due(self) -> None:
        """Record a finished evaluation; start one when the model changed and one is due."""
        trainer = self.trainer
        assert trainer is not None and self.embedder is not None
        if (done := self._evaluations.finished()) is not None:
            try:
                self._last_assignment = done.future.result()
            except Exception:
                log.exception("evaluation failed; the next one is due in an interval")
        elif self._evaluations.running:
            return
        if trainer.version <= self._evaluated_version:
            return
        first = self._evaluated_version == 0
        if (
            not first
            and time.monotonic() - self._evaluated_at < self.settings.evaluate_interval_seconds
        ):
            return
        self._evaluated_version, self._evaluated_at = trainer.version, time.monotonic()
        # trainer.model is never changed in place, so the thread may read it as it is now.
        future = self._evaluations.submit(
            self._evaluate, trainer.model, trainer.version, list(trainer.ids)
        )
        self._evaluations.job = EvaluationJob(future)

    def _evaluate(self, model: OnlineKMeans, version: int, ids: list[int]) -> dict[str, int]:
        """A quality snapshot of `version`, then its map and (when due) the assignments and
        rankings brought to it; returns the assignment it saw."""
        assert self.embedder is not None
        snapshot, assignment = evaluate(
            self.db,
            model,
            version=version,
            settings=self.settings,
            embedding_model=self.embedder.model_id,  # reads the embedding cache
            previous=self._last_assignment,
            ids=ids,
        )
        cluster_map.record_map(self.db, model, snapshot)  # after: never twice
        self._refresh_rankings(model, version, ids)
        return assignment

    def _refresh_rankings(self, model: OnlineKMeans, version: int, ids: list[int]) -> None:
        """At most once per interval (on the evaluation's thread, like every pass over all
        profiles): every assignment brought to `model`, then each cluster's ranking of items
        recomputed for `version`. The trainer records newer assignments meanwhile; the sweep
        never overwrites them (assignment_service.record)."""
        assert self.embedder is not None
        due = time.monotonic() - self._ranked_at >= self.settings.recommend_interval_seconds
        if version <= self._ranked_version or not due:
            return
        assignment_service.sweep(self.db, model, ids=ids, version=version)
        rankings.refresh(
            self.db, version=version, settings=self.settings, embedding_model=self.embedder.model_id
        )
        self._ranked_version, self._ranked_at = version, time.monotonic()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()
