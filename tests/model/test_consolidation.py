"""Consolidation: an idle trainer moves each centre to the mean of its current members, once."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from app.clustering.codec import decode_arrays
from app.clustering.vectors import unit_rows
from app.db.base import utcnow
from app.db.models import ModelCheckpoint, UserProfile
from app.model import repository as model_repository
from app.model.consolidation import Cancelled, lloyd_over_profiles
from app.model.trainer import CONSOLIDATED, Trainer, TrainResult
from tests.factories import TOPICS, drain, post, step_settled, topic_events, trainer_for

MUSIC = [
    "jazz concert in the park",
    "symphony orchestra performance",
    "rock band guitar solo",
    "learning to play the piano",
    "new pop album release",
]


def until_idle(db, trainer: Trainer) -> list[TrainResult]:
    """Steps until one neither trains nor commits (the consolidation is the step before)."""
    results = []
    while (result := step_settled(db, trainer)).rows or result.version is not None:
        results.append(result)
    return results


def latest(db) -> ModelCheckpoint:
    with db.read() as session:
        return model_repository.latest_checkpoint(session)


def checkpoint(db, version: int) -> ModelCheckpoint:
    with db.read() as session:
        return model_repository.get_checkpoint(session, version)


def profiles(db, dim: int) -> np.ndarray:
    with db.read() as session:
        blobs = session.scalars(select(UserProfile.vector_sum).order_by(UserProfile.user_id))
        return unit_rows(list(blobs), dim)[0].astype(np.float64)


def centers_of(row: ModelCheckpoint) -> np.ndarray:
    return decode_arrays(model_repository.checkpoint_state(row))[0]


def inertia(centers: np.ndarray, X: np.ndarray) -> float:
    return float((((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)).min(axis=1).sum())


def drifted_stream(db, embedder, make_settings) -> None:
    """A streaming model (no consolidation) whose food centre lags its members: they were
    trained on food, then moved to music, and without forgetting the old rows outweigh it."""
    settings = make_settings(
        clusters=3,
        min_users_first_fit=36,
        batch_size=12,
        model_half_life=0,
        profile_half_life_days=1,
        consolidate=False,
    )
    trainer = trainer_for(settings, embedder)
    users = {topic: [f"{topic}-{u}" for u in range(12)] for topic in TOPICS}
    for day in range(8):
        when = (utcnow() - timedelta(days=16 - 2 * day)).isoformat()
        events = []
        for topic, members in users.items():
            texts = MUSIC if topic == "food" and day >= 4 else TOPICS[topic]
            for i, user in enumerate(members):
                text = texts[(i + day) % len(texts)]
                events.append({"user_id": user, "type": "like", "text": text, "timestamp": when})
        post(db, events)
        drain(db, embedder, settings)
        until_idle(db, trainer)


def test_an_idle_trainer_consolidates_stale_centres(db, embedder, make_settings):
    drifted_stream(db, embedder, make_settings)
    stream = latest(db)
    X = profiles(db, embedder.dim)
    before = centers_of(stream)
    # The Lloyd step, computed here independently of the trainer.
    labels = (((X[:, None, :] - before[None, :, :]) ** 2).sum(axis=2)).argmin(axis=1)
    expected = before.copy()
    for c in np.unique(labels):
        expected[c] = X[labels == c].mean(axis=0)

    trainer = trainer_for(make_settings(clusters=3, model_half_life=0), embedder)
    trainer.restore(db)
    result = step_settled(db, trainer)
    assert (result.rows, result.version) == (0, stream.version + 1)

    row = latest(db)
    after = centers_of(row)
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-12)
    assert np.array_equal(trainer.model.centers, after)
    # Moving a centre to its members' mean lowers their inertia by n * |move|^2, and members
    # that now find another centre nearer lower it further.
    moved = sum(np.sum(labels == c) * np.sum((before[c] - after[c]) ** 2) for c in range(3))
    assert inertia(after, X) <= inertia(before, X) - moved + 1e-9
    assert inertia(after, X) < 0.99 * inertia(before, X), (inertia(after, X), inertia(before, X))
    # Same generation, counts (and so the stream's learning rate) untouched, marked in meta.
    assert row.generation == stream.generation and row.counts == stream.counts
    assert row.trained_rows == 0 and row.meta[CONSOLIDATED] == len(X)
    assert row.meta["rng"] == stream.meta["rng"]
    assert row.meta["n_steps_"] == stream.meta["n_steps_"]
    # Once per model change, in this trainer and in a restarted one.
    assert step_settled(db, trainer).version is None
    restarted = trainer_for(make_settings(clusters=3, model_half_life=0), embedder)
    restarted.restore(db)
    assert step_settled(db, restarted).version is None and latest(db).version == row.version


def test_one_consolidation_per_idle_period_and_none_when_nothing_changed(
    db, embedder, make_settings
):
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9)
    post(db, topic_events(users_per_topic=6, events_per_user=2))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    results = until_idle(db, trainer)
    trained = [r.version for r in results if r.rows]
    assert trained == [1, 2] and (results[-1].rows, results[-1].version) == (0, 3)
    assert latest(db).meta[CONSOLIDATED] == 18
    for _ in range(3):  # idle and unchanged: no more versions
        assert step_settled(db, trainer).version is None
    # Nor after a restart: the checkpoint says it is a consolidation already.
    restarted = trainer_for(settings, embedder)
    restarted.restore(db)
    assert step_settled(db, restarted).version is None and latest(db).version == 3

    post(db, topic_events(users_per_topic=2, events_per_user=1, prefix="more-"))
    drain(db, embedder, settings)
    results = until_idle(db, restarted)
    assert [(r.rows, r.version) for r in results] == [(6, 4), (0, 5)]
    assert CONSOLIDATED not in checkpoint(db, 4).meta and latest(db).meta[CONSOLIDATED] == 24
    assert step_settled(db, restarted).version is None and latest(db).version == 5


def test_no_consolidation_when_off_or_before_the_first_fit(db, embedder, make_settings):
    post(db, topic_events(users_per_topic=6, events_per_user=2))  # 18 users
    drain(db, embedder, make_settings())
    waiting = trainer_for(make_settings(clusters=3, min_users_first_fit=30), embedder)
    result = step_settled(db, waiting)
    assert (result.rows, result.version, latest(db)) == (0, None, None)

    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9, consolidate=False)
    trainer = trainer_for(settings, embedder)
    assert [r.version for r in until_idle(db, trainer)] == [1, 2]
    assert step_settled(db, trainer).version is None and latest(db).version == 2


def set_untrained(db, users: list[str] | None, untrained: bool) -> None:
    """Hide profiles from the stream (or show them again) to replay it in phases."""
    query = update(UserProfile).values(trained_version=0 if untrained else UserProfile.version)
    if users is not None:
        query = query.where(UserProfile.user_id.in_(users))
    with db.write() as session:
        session.execute(query)


def test_training_resumed_with_consolidation_is_bit_identical(db, embedder, make_settings):
    """Two phases, each trained and then consolidated; the trainer dies before a
    consolidation, right after one, and mid-phase. The final checkpoint is the same."""
    settings = make_settings(clusters=3, min_users_first_fit=20, batch_size=10, model_half_life=25)
    post(db, topic_events(users_per_topic=30, events_per_user=2))
    drain(db, embedder, settings)
    early = [f"{topic}-{u}" for topic in TOPICS for u in range(20)]
    later = [f"{topic}-{u}" for topic in TOPICS for u in range(20, 30)]

    def start_phase(phase: int) -> None:
        if phase == 1:  # only the early users are new; the later ones exist but wait
            set_untrained(db, None, untrained=False)
            set_untrained(db, early, untrained=True)
        else:
            set_untrained(db, later, untrained=True)

    uninterrupted = trainer_for(settings, embedder)
    versions = []
    for phase in (1, 2):
        start_phase(phase)
        versions += [r.version for r in until_idle(db, uninterrupted)]
    assert versions == list(range(1, len(versions) + 1))
    consolidations = [v for v in versions if CONSOLIDATED in checkpoint(db, v).meta]
    assert len(consolidations) == 2 and consolidations[-1] == versions[-1]
    reference = latest(db)

    with db.write() as session:
        session.execute(ModelCheckpoint.__table__.delete())

    def restarted() -> Trainer:
        trainer = trainer_for(settings, embedder)
        trainer.restore(db)
        return trainer

    trainer = trainer_for(settings, embedder)
    start_phase(1)
    while step_settled(db, trainer).rows:  # trains phase 1, then consolidates; ...
        pass
    trainer = restarted()  # ... dies right after the consolidation
    assert trainer.version == consolidations[0] and step_settled(db, trainer).version is None
    start_phase(2)
    step_settled(db, trainer)
    step_settled(db, trainer)
    trainer = restarted()  # dies mid-phase
    while (result := step_settled(db, trainer)).rows:
        assert result.version is not None
    # The loop's last step consolidated already; kill before one instead: roll it back.
    assert result.version == reference.version
    with db.write() as session:
        session.execute(
            ModelCheckpoint.__table__.delete().where(ModelCheckpoint.version == result.version)
        )
    trainer = restarted()
    assert step_settled(db, trainer).version == reference.version  # the restored one consolidates
    assert step_settled(db, trainer).version is None

    result_row = latest(db)
    assert result_row.version == reference.version
    assert result_row.centers == reference.centers and result_row.counts == reference.counts
    assert result_row.meta == reference.meta
    X = profiles(db, embedder.dim)
    assert np.array_equal(trainer.model.predict(X), uninterrupted.model.predict(X))


def test_consolidations_are_spaced_by_the_interval(db, embedder, make_settings):
    """Each consolidation reads every profile: under a steady stream, at most one per interval."""
    settings = make_settings(
        clusters=3, min_users_first_fit=9, batch_size=9, consolidate_interval_seconds=3600
    )
    post(db, topic_events(users_per_topic=6, events_per_user=2))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    results = until_idle(db, trainer)
    first = [r.version for r in results]
    assert trainer.consolidated == first[-1]  # the first idle step consolidated at once
    post(db, topic_events(users_per_topic=6, events_per_user=1, prefix="more-"))
    drain(db, embedder, settings)
    trained = [r.version for r in until_idle(db, trainer)]
    assert trained and step_settled(db, trainer).version is None  # changed, but within the interval
    assert trainer.consolidated != trainer.version


def test_a_stopped_pass_ends_at_its_next_page(db, embedder, make_settings):
    """Closing the trainer (shutdown, lost lead) stops a running pass instead of waiting for
    it to read every profile."""
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9, consolidate=False)
    post(db, topic_events(users_per_topic=3, events_per_user=1))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    assert trainer.step(db).version == 1
    stop = threading.Event()
    centers, members = lloyd_over_profiles(db, trainer.model, stop)
    assert members == 9 and centers.shape == trainer.model.centers.shape
    stop.set()
    with pytest.raises(Cancelled):
        lloyd_over_profiles(db, trainer.model, stop)
