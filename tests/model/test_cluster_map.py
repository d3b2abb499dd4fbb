"""The map of each evaluated version: made once, pruned to marks, never for a lost version."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.base import utcnow
from app.db.models import ClusterMap
from app.model import cluster_map
from app.model import repository as model_repository
from app.model.evaluation import evaluate
from tests.factories import drain, post, topic_events, trainer_for


@pytest.fixture
def settings(make_settings):
    return make_settings(clusters=3, min_users_first_fit=30, batch_size=64)


def test_old_maps_lose_their_points_but_keep_their_marks(db):
    def row(version: int) -> dict:
        return {
            "model_version": version,
            "generation": 1 + version // 3,
            "consolidation": version % 2 == 0,
            "computed_at": utcnow(),
            "explained": 1.0,
            "centers": [],
            "points": [[0.0, 0.0, 0]],
        }

    with db.write() as session:
        for version in range(1, 6):
            model_repository.add_map(session, row(version), keep_points=2)
        model_repository.add_map(session, {**row(5), "points": []}, keep_points=2)
    with db.read() as session:
        kept = session.execute(
            select(ClusterMap.model_version, ClusterMap.points).order_by(ClusterMap.model_version)
        ).all()
        version = model_repository.latest_map_version(session)
        latest = model_repository.get_map(session, version) if version else None
        marks = model_repository.version_marks(session, [1, 2, 3, 4, 5])
    assert [(v, p is not None) for v, p in kept] == [
        (1, False), (2, False), (3, False), (4, True), (5, True)
    ]  # fmt: skip
    assert latest is not None and latest.points == [[0.0, 0.0, 0]]  # the first map of v5 stays
    assert marks == {v: (1 + v // 3, v % 2 == 0) for v in range(1, 6)}


def test_a_map_is_not_made_for_a_version_whose_checkpoint_is_gone(db, embedder, settings):
    post(db, topic_events(users_per_topic=12, events_per_user=3))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.step(db)
    snapshot, _ = evaluate(
        db, trainer.model, version=99, settings=settings, embedding_model=embedder.model_id
    )
    cluster_map.record_map(db, trainer.model, snapshot)
    with db.read() as session:
        assert model_repository.latest_map_version(session) is None
