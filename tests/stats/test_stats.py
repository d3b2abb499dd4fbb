"""One stats service: GET /v1/stats and GET /metrics report the same pipeline state."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from app.clustering.codec import dump_state
from app.clustering.model import OnlineKMeans
from app.db.base import utcnow
from app.db.models import ModelCheckpoint
from tests.observability.conftest import sample

EVENTS = {
    "events": [
        {"user_id": "u1", "type": "view", "text": "rocket launch to mars"},
        {"user_id": "u2", "type": "like", "text": "pasta recipe with tomato"},
        {"user_id": "u3", "type": "view", "item_id": "no-text-yet"},
    ]
}


def add_checkpoint(db, version: int) -> None:
    model = OnlineKMeans(n_clusters=3, n_features=4, half_life=None, batch_size=8, seed=0)
    model.partial_fit(np.random.default_rng(0).normal(size=(8, 4)))
    state = dump_state(model, embedding_model="test-model")
    with db.write() as session:
        session.add(
            ModelCheckpoint(
                version=version,
                generation=1,
                embedding_model="test-model",
                n_features=4,
                n_clusters=3,
                meta=state.meta,
                centers=state.centers,
                counts=state.counts,
                trained_rows=8,
                created_at=utcnow(),
            )
        )


def test_stats_and_metrics_agree(client, db):
    assert client.post("/v1/events", json=EVENTS).status_code == 202
    add_checkpoint(db, version=5)
    stats = client.get("/v1/stats").json()
    text = client.get("/metrics").text
    assert stats["events"] == {
        "received": 3,
        "applied": 0,
        "pending": 3,
        "waiting_for_item": 1,
        "quarantined": 0,
    }
    for state, value in stats["events"].items():
        assert sample(text, f"interest_events_{state}") == value
    assert sample(text, "interest_users") == stats["users"] == 0
    assert sample(text, "interest_model_version") == stats["model"]["version"] == 5
    assert sample(text, "interest_model_clusters") == stats["model"]["n_clusters"] == 3
    trained_at = datetime.fromisoformat(stats["model"]["trained_at"])
    assert 0 <= sample(text, "interest_last_checkpoint_age_seconds") < 600
    assert (utcnow() - trained_at).total_seconds() < 600
    assert stats["lag_seconds"] >= 0.0
