"""Liveness and readiness, including a database that is down."""

from __future__ import annotations

import socket
import time

from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from app.config import load_settings
from app.main import create_app
from app.worker.loop import Worker
from tests.observability.conftest import sample


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ready_with_the_database_up(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_not_ready_when_postgres_is_unreachable():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    app = create_app(load_settings(database_url=url, worker="off"))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["checks"]["database"].startswith("unreachable")
        ingest = client.post(
            "/v1/events", json={"events": [{"user_id": "u", "type": "view", "text": "t"}]}
        )
        assert ingest.status_code == 503
        assert "Traceback" not in ingest.text


def test_not_ready_when_the_embedding_model_cannot_load(make_client, tmp_path):
    client = make_client(worker="inline", embedding_model=str(tmp_path / "no-such-model"))
    worker = client.app.state.worker
    for _ in range(100):
        if worker.load_error:
            break
        time.sleep(0.05)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["embedding_model"].startswith("failed: ")
    assert "no-such-model" in response.json()["detail"]


def test_a_worker_reports_ready_in_its_metrics_only_while_its_model_is_loaded(
    make_settings, db, tmp_path
):
    """What the compose health check of a worker reads (docker-compose.yml)."""

    def ready() -> float | None:
        return sample(generate_latest().decode(), "interest_worker_ready")

    broken = Worker(make_settings(embedding_model=str(tmp_path / "no-such-model")), db)
    broken.run()  # returns at once: the model cannot load
    assert broken.load_error and ready() == 0

    worker = Worker(make_settings(), db)
    thread = worker.start_thread()
    try:
        for _ in range(600):
            if ready() == 1:
                break
            time.sleep(0.05)
        assert ready() == 1 and worker.model_status == "loaded"
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert ready() == 0
