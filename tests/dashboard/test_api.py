"""The dashboard's page and data endpoints, with the real pipeline and model behind them."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from app.db.models import ClusterMap
from app.model import cluster_map
from app.model import repository as model_repository
from app.model.evaluation import evaluate
from app.model.trainer import CONSOLIDATED
from app.worker.leader import trainer_present
from app.worker.loop import Worker
from tests.factories import drain, post, topic_events, trainer_for

READ_KEY = "read-key-0123456789"
INGEST_KEY = "ingest-key-0123456789"


# Every version is evaluated (and mapped) at once, so the tests need not wait a minute.
TUNING = {
    "clusters": 3,
    "min_users_first_fit": 30,
    "batch_size": 64,
    "evaluate_interval_seconds": 0.001,
}


@pytest.fixture
def settings(make_settings):
    return make_settings(**TUNING)


@pytest.fixture
def client(make_client):
    return make_client(**TUNING)


@pytest.fixture
def worker(db, embedder, settings):
    """The real worker loop, stepped by hand, with the real model; it leads (trains)."""
    worker = Worker(settings, db)
    worker.embedder = embedder
    yield worker
    worker.leader.release()


def run_until_idle(worker: Worker) -> None:
    """Rounds until one does nothing and no background work waits to be recorded."""
    for _ in range(600):
        busy = worker.run_once()
        if not busy and worker.settled:
            return
        if not busy:
            time.sleep(0.05)  # an evaluation or a consolidation runs on its thread
    raise AssertionError("the worker never went idle")


def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-auth="open"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy  # nothing from elsewhere
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = client.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    missing = client.get("/dashboard/static/..%2Fservice.py")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_with_keys_the_page_asks_for_one_and_the_data_needs_the_read_scope(make_client):
    client = make_client(**TUNING, api_keys={READ_KEY: ["read"], INGEST_KEY: ["ingest"]})
    page = client.get("/dashboard")  # the page holds no data: anyone may load it
    assert page.status_code == 200 and 'data-auth="key"' in page.text
    assert READ_KEY not in page.text
    for path in ("/v1/dashboard/pipeline", "/v1/dashboard/map", "/v1/dashboard/versions"):
        assert client.get(path).status_code == 401
        ingest_only = client.get(path, headers={"Authorization": f"Bearer {INGEST_KEY}"})
        assert ingest_only.status_code == 403
        assert client.get(path, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200


def test_before_the_first_model_the_page_is_told_how_many_users_it_waits_for(client, db, settings):
    post(db, topic_events(users_per_topic=4, events_per_user=2))  # 12 users, not applied yet
    body = client.get("/v1/dashboard/pipeline").json()
    assert body["first_fit"] == {"min_users": 30, "waiting_for_users": 30}  # no profiles yet
    assert body["stats"]["events"]["pending"] == 24 and body["stats"]["model"]["version"] is None
    assert body["trainer_running"] is False
    assert client.get("/v1/dashboard/map").json() == {
        "model_version": None,
        "generation": None,
        "computed_at": None,
        "explained": None,
        "centers": [],
        "points": [],
    }
    assert client.get("/v1/dashboard/versions").json() == {"versions": []}


def test_the_pipeline_panel_counts_profiles_and_sees_the_trainer(client, db, worker):
    post(db, topic_events(users_per_topic=4, events_per_user=2))
    worker.run_once()  # folds the 12 users (too few to train) and takes the trainer lock
    body = client.get("/v1/dashboard/pipeline").json()
    assert body["first_fit"]["waiting_for_users"] == 30 - 12
    assert body["stats"] == client.get("/v1/stats").json()
    assert body["trainer_running"] is True and trainer_present(worker.db)
    worker.leader.release()
    # Polls share one read, renewed in the background: the page sees the change a poll later.
    deadline = time.monotonic() + 10
    while client.get("/v1/dashboard/pipeline").json()["trainer_running"]:
        assert time.monotonic() < deadline, "the pipeline panel never saw the trainer stop"
        time.sleep(0.2)


def test_the_worker_maps_each_evaluated_version_once(client, db, worker):
    post(db, topic_events(users_per_topic=12, events_per_user=3))
    run_until_idle(worker)
    latest = client.get("/v1/stats").json()["model"]["version"]
    drawn = client.get("/v1/dashboard/map").json()
    assert drawn["model_version"] == latest and drawn["generation"] == 1
    # One mark per cluster, with the size and keywords of that version's evaluation.
    metrics = client.get("/v1/clusters/metrics").json()
    assert metrics["model_version"] == latest
    assert [c["cluster_id"] for c in drawn["centers"]] == [0, 1, 2]
    assert [c["size"] for c in drawn["centers"]] == metrics["sizes"]
    clusters = client.get("/v1/clusters").json()["clusters"]
    keywords = {c["cluster_id"]: c["keywords"][:5] for c in clusters}
    assert all(c["keywords"] == keywords[c["cluster_id"]] for c in drawn["centers"])
    # Every user is in the sample (36 <= MAP_USERS), drawn with the cluster the API answers.
    points = drawn["points"]
    assert len(points) == 36
    answered = [
        client.get(f"/v1/users/{topic}-{u}/cluster").json()["cluster_id"]
        for topic in ("space", "food", "sport")
        for u in range(12)
    ]
    assert sorted(p[2] for p in points) == sorted(answered)
    # Three tastes, three places on the map: each user is drawn nearest its own centre.
    centres = {c["cluster_id"]: (c["x"], c["y"]) for c in drawn["centers"]}
    for x, y, cluster in points:
        nearest = min(centres, key=lambda c: (centres[c][0] - x) ** 2 + (centres[c][1] - y) ** 2)
        assert nearest == cluster
    # Once per version: every evaluated version has exactly one map.
    with db.read() as session:
        maps = session.scalar(select(func.count()).select_from(ClusterMap))
    versions = client.get("/v1/dashboard/versions").json()["versions"]
    assert maps == len(versions) >= 1


def test_versions_mark_consolidations_and_new_generations(client, db, worker, settings, embedder):
    post(db, topic_events(users_per_topic=12, events_per_user=3))
    run_until_idle(worker)  # trains, then consolidates once when idle
    recluster = trainer_for(settings, embedder)
    recluster.restore(db)
    new_version = recluster.recluster(db, clusters=3)
    run_until_idle(worker)  # adopts the new generation, may consolidate it, evaluates
    versions = client.get("/v1/dashboard/versions").json()["versions"]
    # The first evaluated version of generation 2 carries the mark, and only it.
    marked = [v for v in versions if v["new_generation"]]
    assert len(marked) == 1 and marked[0]["generation"] == 2
    assert marked[0]["model_version"] >= new_version
    assert [v["generation"] for v in versions] == sorted(v["generation"] for v in versions)
    # Consolidations are marked exactly where the checkpoint says it was one.
    with db.read() as session:
        checkpoints = {
            v["model_version"]: model_repository.get_checkpoint(session, v["model_version"])
            for v in versions
        }
    assert any(v["consolidation"] for v in versions)
    for v in versions:
        checkpoint = checkpoints[v["model_version"]]
        assert v["consolidation"] == (CONSOLIDATED in checkpoint.meta)
        assert v["generation"] == checkpoint.generation
    assert all(v["silhouette"] is not None and sum(v["sizes"]) == 36 for v in versions)
    assert versions == sorted(versions, key=lambda v: v["model_version"])
    assert len(client.get("/v1/dashboard/versions?limit=1").json()["versions"]) == 1
    assert client.get("/v1/dashboard/versions?limit=0").status_code == 422


def test_the_answers_follow_each_new_evaluation_and_map(client, db, embedder, settings):
    """The map and versions answers are stored per data state: a new evaluation, and the
    map stored after it, each show at once."""
    post(db, topic_events(users_per_topic=12, events_per_user=3))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.step(db)
    snapshot, _ = evaluate(
        db, trainer.model, version=trainer.version, settings=settings,
        embedding_model=embedder.model_id,
    )  # fmt: skip
    before = client.get("/v1/dashboard/versions").json()["versions"]
    assert [(v["model_version"], v["generation"]) for v in before] == [(trainer.version, None)]
    assert client.get("/v1/dashboard/map").json()["model_version"] is None
    cluster_map.record_map(db, trainer.model, snapshot)  # the worker's next line
    after = client.get("/v1/dashboard/versions").json()["versions"]
    assert [(v["model_version"], v["generation"]) for v in after] == [(trainer.version, 1)]
    assert client.get("/v1/dashboard/map").json()["model_version"] == trainer.version
