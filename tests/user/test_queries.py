"""Queries: pending, then assigned; 404s; erasure; clusters; metrics; stats."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.db.models import ClusterAssignment, Event, UserProfile
from app.model.evaluation import evaluate
from app.model.trainer import Trainer
from tests.factories import TOPICS, drain, topic_events


@pytest.fixture
def settings(make_settings):
    return make_settings(clusters=3, min_users_first_fit=30, batch_size=64)


def train(db, embedder, settings) -> Trainer:
    drain(db, embedder, settings)
    trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
    trainer.restore(db)
    while trainer.step(db).rows:
        pass
    return trainer


def test_a_user_is_pending_until_the_first_fit_then_assigned(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=4, events_per_user=3)})
    before = client.get("/v1/users/space-1/cluster").json()
    assert (before["status"], before["cluster_id"], before["model_version"]) == (
        "pending",
        None,
        None,
    )
    assert before["profile"]["pending_events"] == 3

    client.post(
        "/v1/events",
        json={"events": topic_events(users_per_topic=10, events_per_user=3, prefix="x")},
    )
    trainer = train(db, embedder, settings)
    after = client.get("/v1/users/space-1/cluster").json()
    assert after["status"] == "assigned" and after["model_version"] == trainer.version
    assert after["profile"] == {**after["profile"], "events": 3, "pending_events": 0}
    assert 0.0 <= after["confidence"] <= 1.0
    assert [a["cluster_id"] for a in after["alternatives"]] != [] and after["cluster_id"] not in [
        a["cluster_id"] for a in after["alternatives"]
    ]
    assert all(a["distance"] >= after["distance"] for a in after["alternatives"])


def test_users_with_different_tastes_land_in_different_clusters(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=4)})
    train(db, embedder, settings)
    clusters = {
        topic: {
            client.get(f"/v1/users/{topic}-{u}/cluster").json()["cluster_id"] for u in range(12)
        }
        for topic in TOPICS
    }
    assert all(len(ids) == 1 for ids in clusters.values()), clusters
    assert len({ids.pop() for ids in clusters.values()}) == 3


def test_an_unknown_user_is_404(client):
    for path in ("/v1/users/nobody/cluster", "/v1/users/nobody/cluster/history"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert client.delete("/v1/users/nobody").status_code == 404


def test_history_lists_the_changes_of_cluster_by_model_version(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    client.post(
        "/v1/events", json={"events": [{"user_id": "food-1", "type": "like", "text": "pizza"}]}
    )
    train(db, embedder, settings)  # trained again in the same cluster: no new history row
    assert len(client.get("/v1/users/food-1/cluster/history").json()["assignments"]) == 1
    space = [{"user_id": "food-1", "type": "purchase", "text": t} for t in TOPICS["space"] * 2]
    client.post("/v1/events", json={"events": space})
    train(db, embedder, settings)
    history = client.get("/v1/users/food-1/cluster/history").json()["assignments"]
    versions = [h["model_version"] for h in history]
    assert versions == sorted(versions) and len(versions) == 2 and versions[0] <= trainer.version
    assert history[0]["cluster_id"] != history[1]["cluster_id"]


def test_erasure_removes_the_user_and_nothing_else(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    train(db, embedder, settings)

    def counts(user: str) -> tuple[int, int, int]:
        with db.read() as session:
            return tuple(
                session.scalar(select(func.count()).where(model.user_id == user)) or 0
                for model in (Event, UserProfile, ClusterAssignment)
            )

    before_other = counts("space-2")
    erased = client.delete("/v1/users/space-1").json()
    assert erased == {"user_id": "space-1", "events": 2, "profile": 1, "history": 1}
    assert counts("space-1") == (0, 0, 0)
    assert counts("space-2") == before_other and before_other[0] == 2
    assert client.get("/v1/users/space-1/cluster").status_code == 404


def test_clusters_metrics_and_stats(client, db, embedder, settings):
    assert client.get("/v1/clusters").json() == {
        "model_version": None,
        "latest_model_version": None,
        "computed_at": None,
        "clusters": [],
    }
    assert client.get("/v1/clusters/metrics").status_code == 404
    client.put("/v1/items/m1", json={"text": "Apollo 13 (1995) — Adventure|Drama|IMAX"})
    events = topic_events(users_per_topic=12, events_per_user=3)
    events += [{"user_id": f"space-{u}", "type": "purchase", "item_id": "m1"} for u in range(12)]
    client.post("/v1/events", json={"events": events})
    trainer = train(db, embedder, settings)
    evaluate(
        db,
        trainer.model,
        version=trainer.version,
        settings=settings,
        embedding_model=embedder.model_id,
    )

    metrics = client.get("/v1/clusters/metrics").json()
    assert metrics["model_version"] == trainer.version and metrics["n_users"] == 36
    assert sum(metrics["sizes"]) == 36 and -1 <= metrics["silhouette"] <= 1
    assert metrics["silhouette"] > 0.1  # three clearly separated tastes
    assert [
        s["model_version"] for s in client.get("/v1/clusters/metrics/history").json()["snapshots"]
    ] == [trainer.version]

    clusters = client.get("/v1/clusters").json()["clusters"]
    space = next(
        c for c in clusters if any(i["item_id"] == "m1" for i in c["representative_items"])
    )
    assert space["size"] == 12
    assert {"rocket", "space", "mars", "galaxy", "nasa", "apollo", "telescope"} & set(
        space["keywords"]
    )

    # Training goes on; the explanations and metrics are of the evaluated version, and say so.
    client.post("/v1/events", json={"events": topic_events(2, 2, prefix="late-")})
    evaluated = trainer.version
    drain(db, embedder, settings)
    while trainer.step(db).rows:
        pass
    assert trainer.version > evaluated
    for path in ("/v1/clusters", "/v1/clusters/metrics"):
        answer = client.get(path).json()
        assert answer["model_version"] == evaluated
        assert answer["latest_model_version"] == trainer.version
    assert client.get("/v1/users/space-1/cluster").json()["model_version"] == trainer.version

    stats = client.get("/v1/stats").json()
    assert stats["events"] == {
        "received": 132,
        "applied": 132,
        "pending": 0,
        "waiting_for_item": 0,
        "quarantined": 0,
    }
    assert stats["users"] == 42 and stats["model"]["version"] == trainer.version
    assert stats["model"]["n_clusters"] == 3 and stats["lag_seconds"] == 0.0
