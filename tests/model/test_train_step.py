"""A train step fits outside any transaction and commits in one short write: what happens to
profiles folded, erased or written while it fits, and to a step that dies before its commit."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from app.assignment import service as assignment_service
from app.db.models import ClusterAssignment, ModelCheckpoint, UserProfile
from app.model import repository as model_repository
from app.model.trainer import FittedStep, Trainer
from app.profile import repository as profile_repository
from app.user import service as user_service
from tests.factories import drain, post, topic_events, trainer_for


class Interleaved(Trainer):
    """A trainer that runs `during(rows)` between its fit and its commit, as another process
    would: no lock of the step may be held then (a held one would block or deadlock here)."""

    def __init__(self, *args, during, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.during = during

    def _fit(self, rows: list[tuple[str, bytes, int]]) -> FittedStep | None:
        fitted = super()._fit(rows)
        self.during([user_id for user_id, _, _ in rows])
        return fitted


def interleaved(settings, embedder, during) -> Interleaved:  # type: ignore[no-untyped-def]
    return Interleaved(settings, embedding_model=embedder.model_id, dim=embedder.dim, during=during)


def profile_versions(db, user_id: str) -> tuple[int, int]:
    with db.read() as session:
        row = profile_repository.get(session, user_id)
        return row.version, row.trained_version


def test_a_profile_folded_while_the_step_fits_stays_untrained(db, embedder, make_settings):
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9)
    post(db, topic_events(users_per_topic=3, events_per_user=2))
    drain(db, embedder, settings)
    folded: list[str] = []

    def fold_again(users: list[str]) -> None:
        if folded:
            return
        folded.append(users[0])
        event = {"user_id": users[0], "type": "like", "text": "a brand new interest"}
        post(db, [event])
        assert drain(db, embedder, settings) == 1  # the fold's row lock and write go through

    trainer = interleaved(settings, embedder, fold_again)
    result = trainer.step(db)
    assert (result.rows, result.version) == (9, 1)
    version, trained = profile_versions(db, folded[0])
    assert trained == version - 1  # trained at the version read, not the one folded since
    with db.read() as session:
        assert profile_repository.count_untrained(session) == 1
    assert trainer.step(db).rows == 1  # the next step takes the newer profile
    assert profile_versions(db, folded[0]) == (version, version)


def test_a_user_erased_while_the_step_fits_gets_no_history(db, embedder, make_settings):
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9)
    post(db, topic_events(users_per_topic=3, events_per_user=1))
    drain(db, embedder, settings)
    erased: list[str] = []

    def erase(users: list[str]) -> None:
        erased.append(users[0])
        with db.write() as session:
            user_service.erase(session, user_id=users[0])

    assert interleaved(settings, embedder, erase).step(db).version == 1
    with db.read() as session:
        history = set(session.scalars(select(ClusterAssignment.user_id)))
        assert profile_repository.get(session, erased[0]) is None
    assert erased[0] not in history and len(history) == 8


def test_a_step_that_dies_before_its_commit_changes_nothing(db, embedder, make_settings):
    """Killed between fit and commit: the model stays the committed one, the profiles stay
    untrained, and the next step trains exactly what an uninterrupted one would have."""
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9, consolidate=False)
    post(db, topic_events(users_per_topic=6, events_per_user=1))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    assert trainer.step(db).version == 1

    def die(users: list[str]) -> None:
        raise RuntimeError("killed")

    dying = interleaved(settings, embedder, die)
    dying.restore(db)
    with pytest.raises(RuntimeError, match="killed"):
        dying.step(db)
    with db.read() as session:
        assert model_repository.latest_version(session) == 1
        assert profile_repository.count_untrained(session) == 9
    committed = model_repository.checkpoint_state(final(db))
    assert dying.version == 1 and dying.model.centers.tobytes() == committed.centers

    assert trainer.step(db).version == 2  # the uninterrupted reference
    reference = final(db)
    with db.write() as session:  # replay the step the dying trainer never committed
        session.execute(ModelCheckpoint.__table__.delete().where(ModelCheckpoint.version == 2))
        session.execute(
            UserProfile.__table__.update()
            .where(UserProfile.user_id.in_(sorted(last_trained(db))))
            .values(trained_version=0)
        )
    dying.during = lambda users: None
    assert dying.step(db).version == 2
    replayed = final(db)
    assert (replayed.centers, replayed.counts, replayed.meta) == (
        reference.centers,
        reference.counts,
        reference.meta,
    )


def final(db):  # type: ignore[no-untyped-def]
    with db.read() as session:
        return model_repository.latest_checkpoint(session)


def last_trained(db) -> set[str]:
    with db.read() as session:
        return set(
            session.scalars(
                select(ClusterAssignment.user_id).where(ClusterAssignment.model_version == 2)
            )
        )


def test_a_step_of_many_batches_trains_as_many_one_batch_steps(db, embedder, make_settings):
    """Batches per step change how often a version is committed, never what is learnt."""
    post(db, topic_events(users_per_topic=20, events_per_user=1))  # 60 users
    states = []
    for batches in (1, 4):
        settings = make_settings(
            clusters=3, min_users_first_fit=9, batch_size=9, consolidate=False,
            train_step_batches=batches, model_half_life=30,
        )  # fmt: skip
        drain(db, embedder, settings)
        with db.write() as session:
            session.execute(UserProfile.__table__.update().values(trained_version=0))
            session.execute(ModelCheckpoint.__table__.delete())
        trainer = trainer_for(settings, embedder)
        versions = 0
        while trainer.step(db).rows:
            versions += 1
        row = final(db)
        states.append((row.centers, row.counts, row.meta["n_steps_"], row.meta["rng"], versions))
    assert states[0][:4] == states[1][:4]
    assert (states[0][4], states[1][4]) == (1 + 6, 1 + 2)  # 9 first, then 51 rows: 6 or 2 steps


def test_a_step_commit_waits_for_the_sweep_instead_of_deadlocking(
    backend, db, embedder, make_settings
):
    """The sweep holds the change feed's lock, then share-locks the profiles it writes for. A
    step's commit that locked profile rows (mark_trained) before asking for that lock closed a
    cycle: PostgreSQL killed one of them (deadlock detected, seen at a million users)."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: no row locks to order")
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9)
    post(db, topic_events(users_per_topic=3, events_per_user=1))
    drain(db, embedder, settings)
    with db.read() as session:
        users = [u for u, _, _ in profile_repository.untrained_profiles(session, 100)]
    results: list[object] = []

    def step() -> None:
        try:
            results.append(trainer_for(settings, embedder).step(db))
        except Exception as exc:
            results.append(exc)

    with db.write() as sweep:  # what assignment_service.sweep holds while it writes
        assignment_service.lock_changes(sweep)
        stepping = threading.Thread(target=step)
        stepping.start()
        waiting_on_lock = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        deadline = time.monotonic() + 60
        while not sweep.scalar(waiting_on_lock) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the step's commit waits for the feed's lock
        assert profile_repository.lock_existing(sweep, users) == set(users)
    stepping.join()
    assert len(results) == 1 and not isinstance(results[0], Exception), results
    assert results[0].version == 1  # type: ignore[attr-defined]
