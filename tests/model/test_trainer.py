"""The train stage on a real database: first fit, versions, exact resume, forgetting."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from app.clustering.codec import CheckpointError
from app.clustering.vectors import unit_rows
from app.db.base import utcnow
from app.db.models import ModelCheckpoint, UserProfile
from app.model import repository as model_repository
from app.model.trainer import Trainer
from app.profile import repository as profile_repository
from tests.factories import TOPICS, drain, post, topic_events, trainer_for


def train_all(db, trainer: Trainer) -> list[int]:
    versions = []
    while (result := trainer.step(db)).rows:
        if result.version is not None:
            versions.append(result.version)
    return versions


def test_first_fit_waits_for_enough_users(db, embedder, make_settings):
    settings = make_settings(clusters=3, min_users_first_fit=30, batch_size=16)
    post(db, topic_events(users_per_topic=8, events_per_user=2))  # 24 users
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    assert trainer.step(db).rows == 0 and trainer.version == 0
    post(db, topic_events(users_per_topic=3, events_per_user=2, prefix="more-"))  # 33 users
    drain(db, embedder, settings)
    first = trainer.step(db)
    assert (first.rows, first.version) == (30, 1)  # max(batch_size, min_users_first_fit) rows
    with db.read() as session:
        assert profile_repository.count_untrained(session) == 3
        assert model_repository.latest_version(session) == 1


def test_versions_grow_and_only_the_last_n_are_kept(db, embedder, make_settings):
    settings = make_settings(
        clusters=3, min_users_first_fit=9, batch_size=9, checkpoints_keep=3, consolidate=False
    )
    post(db, topic_events(users_per_topic=20, events_per_user=1))
    drain(db, embedder, settings)
    versions = train_all(db, trainer_for(settings, embedder))
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 6
    with db.read() as session:
        kept = [c["version"] for c in model_repository.checkpoint_summaries(session)]
    assert kept == versions[-3:]


def reset_training(db) -> None:
    with db.write() as session:
        session.execute(update(UserProfile).values(trained_version=0))
        session.execute(ModelCheckpoint.__table__.delete())


def final_state(db) -> ModelCheckpoint:
    with db.read() as session:
        return model_repository.latest_checkpoint(session)


def test_training_resumed_from_a_checkpoint_is_bit_identical(db, embedder, make_settings):
    settings = make_settings(
        clusters=3, min_users_first_fit=20, batch_size=10, model_half_life=25, consolidate=False
    )  # the stream alone; with consolidation: tests/model/test_consolidation.py
    post(db, topic_events(users_per_topic=30, events_per_user=2))
    drain(db, embedder, settings)

    uninterrupted = trainer_for(settings, embedder)
    total = len(train_all(db, uninterrupted))
    reference = final_state(db)

    reset_training(db)
    first = trainer_for(settings, embedder)
    for _ in range(3):  # N steps, then the process "dies"
        first.step(db)
    del first
    resumed = trainer_for(settings, embedder)
    resumed.restore(db)
    assert resumed.version == 3
    assert len(train_all(db, resumed)) == total - 3  # M more
    result = final_state(db)

    assert result.version == reference.version == total
    assert result.centers == reference.centers and result.counts == reference.counts
    assert result.meta == reference.meta
    with db.read() as session:
        X, _ = unit_rows(list(session.scalars(select(UserProfile.vector_sum))), embedder.dim)
    assert np.array_equal(resumed.model.predict(X), uninterrupted.model.predict(X))


def test_a_checkpoint_of_another_embedding_model_is_refused(db, embedder, make_settings):
    settings = make_settings(clusters=3, min_users_first_fit=9, batch_size=9)
    post(db, topic_events(users_per_topic=5, events_per_user=1))
    drain(db, embedder, settings)
    train_all(db, trainer_for(settings, embedder))
    other = Trainer(settings, embedding_model="someone/other-model", dim=embedder.dim)
    with pytest.raises(CheckpointError, match="other-model"):
        other.restore(db)
    wider = Trainer(settings, embedding_model=embedder.model_id, dim=768)
    with pytest.raises(CheckpointError, match="768"):
        wider.restore(db)


def distance_to_nearest_center(trainer: Trainer, db, users: list[str], dim: int) -> float:
    with db.read() as session:
        blobs = list(
            session.scalars(select(UserProfile.vector_sum).where(UserProfile.user_id.in_(users)))
        )
    X, _ = unit_rows(blobs, dim)
    centroid = X.mean(axis=0)
    return float(np.min(np.linalg.norm(trainer.model.centers - centroid, axis=1)))


@pytest.mark.parametrize("rounds", [6])
def test_forgetting_lets_clusters_follow_drifting_interests(db, embedder, make_settings, rounds):
    """Food lovers turn to music; with forgetting the food cluster follows them, without it lags."""
    music = [
        "jazz concert in the park",
        "symphony orchestra performance",
        "rock band guitar solo",
        "learning to play the piano",
        "new pop album release",
    ]
    users = {topic: [f"{topic}-{u}" for u in range(12)] for topic in TOPICS}

    def play(half_life: float) -> float:
        from tests.conftest import empty_tables

        empty_tables(db)
        settings = make_settings(
            clusters=3,
            min_users_first_fit=36,
            batch_size=64,
            model_half_life=half_life,
            profile_half_life_days=1,
            consolidate=False,  # the stream alone: a consolidation pulls centres along too
        )
        trainer = trainer_for(settings, embedder)
        day = 0

        def round_of(texts_for) -> None:
            nonlocal day
            day += 1
            when = (utcnow() - timedelta(days=2 * rounds - day)).isoformat()
            events = []
            for topic, members in users.items():
                for i, user in enumerate(members):
                    texts = texts_for(topic)
                    events.append(
                        {
                            "user_id": user,
                            "type": "like",
                            "text": texts[(i + day) % len(texts)],
                            "timestamp": when,
                        }
                    )
            post(db, events)
            drain(db, embedder, settings)
            train_all(db, trainer)

        for _ in range(rounds):
            round_of(lambda topic: TOPICS[topic])
        for _ in range(rounds):
            round_of(lambda topic: music if topic == "food" else TOPICS[topic])
        return distance_to_nearest_center(trainer, db, users["food"], embedder.dim)

    with_forgetting = play(half_life=12)
    without = play(half_life=0)
    assert with_forgetting < 0.5 * without, (with_forgetting, without)
