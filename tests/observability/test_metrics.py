"""GET /metrics: request metrics by route template, pipeline state from the database, and the
worker's cache, encode and train instruments."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from app.clustering.codec import dump_state
from app.clustering.model import OnlineKMeans
from app.db.base import utcnow
from app.db.models import ClusterMetrics, ModelCheckpoint
from app.embedding.embedder import load_embedder
from app.worker.loop import Worker
from tests.observability.conftest import sample

EVENTS = {
    "events": [
        {"user_id": "u1", "type": "view", "text": "rocket launch to mars"},
        {"user_id": "u2", "type": "like", "text": "pasta recipe with tomato"},
        {"user_id": "u3", "type": "view", "item_id": "no-text-yet"},
    ]
}


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert sample(response.text, "interest_database_up") == 1


def test_requests_are_counted_by_route_template_not_path(client):
    labels = {"method": "GET", "route": "/v1/users/{user_id}/cluster", "status": "404"}
    before = sample(client.get("/metrics").text, "http_requests_total", **labels) or 0
    assert client.get("/v1/users/secret-user-42/cluster").status_code == 404
    assert client.get("/v1/users/another-user/cluster").status_code == 404
    assert client.get("/no/such/path/9f3a").status_code == 404
    text = client.get("/metrics").text
    assert sample(text, "http_requests_total", **labels) == before + 2
    assert sample(text, "http_request_duration_seconds_count", **labels) == before + 2
    assert sample(text, "http_requests_total", route="<unmatched>", status="404") >= 1
    assert "secret-user-42" not in text and "9f3a" not in text


def test_unknown_methods_share_one_label(client):
    client.request("BREW", "/v1/stats")
    assert 'method="BREW"' not in client.get("/metrics").text
    assert sample(client.get("/metrics").text, "http_requests_total", method="OTHER") >= 1


def test_event_counts_come_from_the_database(client):
    assert client.post("/v1/events", json=EVENTS).status_code == 202
    text = client.get("/metrics").text
    assert sample(text, "interest_events_received") == 3
    assert sample(text, "interest_events_pending") == 3
    assert sample(text, "interest_events_applied") == 0
    assert sample(text, "interest_events_waiting_for_item") == 1
    assert sample(text, "interest_model_version") == 0
    assert sample(text, "interest_last_checkpoint_age_seconds") is None
    assert sample(text, "interest_silhouette") is None


def test_model_version_checkpoint_age_and_silhouette(client, db):
    model = OnlineKMeans(n_clusters=2, n_features=4, half_life=None, batch_size=8, seed=0)
    model.partial_fit(np.random.default_rng(0).normal(size=(8, 4)))
    state = dump_state(model, embedding_model="test-model")
    created = utcnow() - timedelta(seconds=120)
    with db.write() as session:
        session.add(
            ModelCheckpoint(
                version=7,
                generation=1,
                embedding_model="test-model",
                n_features=4,
                n_clusters=2,
                meta=state.meta,
                centers=state.centers,
                counts=state.counts,
                trained_rows=8,
                created_at=created,
            )
        )
        session.add(
            ClusterMetrics(
                model_version=7,
                computed_at=created,
                n_clusters=2,
                n_users=8,
                silhouette=0.42,
                silhouette_sample_size=8,
                simplified_silhouette=0.5,
                davies_bouldin=1.0,
                calinski_harabasz=3.0,
                inertia=2.0,
                sizes=[4, 4],
                changed_share=None,
                clusters=[],
            )
        )
    text = client.get("/metrics").text
    assert sample(text, "interest_model_version") == 7
    assert sample(text, "interest_model_clusters") == 2
    assert 119 <= sample(text, "interest_last_checkpoint_age_seconds") < 600
    assert sample(text, "interest_silhouette") == pytest.approx(0.42)


def test_database_down_is_reported_not_crashed(make_client):
    client = make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert sample(response.text, "interest_database_up") == 0
    assert sample(response.text, "http_requests_total", route="/metrics") is not None


def test_worker_records_cache_encode_and_train(client, db, make_settings):
    settings = make_settings(min_users_first_fit=2, clusters=2, batch_size=64)
    worker = Worker(settings, db)
    worker.embedder = load_embedder(settings.embedding_model)
    try:
        before = client.get("/metrics").text
        texts = [f"observability test text number {i}" for i in range(4)]
        events = [
            {"user_id": f"m{i}", "type": "view", "text": texts[i % 4], "event_id": f"a{i}"}
            for i in range(6)
        ]
        assert client.post("/v1/events", json={"events": events}).status_code == 202
        assert worker.run_once()
        first = client.get("/metrics").text
        # A second round of the same texts is served from the cache.
        again = [{**e, "event_id": f"b{i}"} for i, e in enumerate(events)]
        assert client.post("/v1/events", json={"events": again}).status_code == 202
        while worker.run_once():
            pass
        second = client.get("/metrics").text
    finally:
        worker.leader.release()

    def delta(text: str, name: str, base: str = before) -> float:
        return (sample(text, name) or 0) - (sample(base, name) or 0)

    assert delta(first, "interest_embed_cache_misses_total") == 4  # four distinct texts
    assert delta(first, "interest_embed_cache_hits_total") == 2  # two repeats in the batch
    assert delta(first, "interest_encode_batch_seconds_count") == 1
    assert delta(first, "interest_worker_events_applied_total") == 6
    assert delta(second, "interest_embed_cache_misses_total", first) == 0
    assert delta(second, "interest_embed_cache_hits_total", first) == 6
    assert delta(second, "interest_encode_batch_seconds_count", first) == 0
    assert delta(second, "interest_train_step_seconds_count") >= 1
    assert delta(second, "interest_train_rows_total") >= 6
    assert sample(second, "interest_worker_trainer") == 1
    assert sample(second, "interest_model_version") >= 1
