"""Never a silent wrong answer (issue 9): a profile that cannot be placed is `pending` with a
reason; a huge but finite one is placed by its direction, not as a zero vector."""

from __future__ import annotations

import numpy as np
import pytest

from app.db.base import utcnow
from app.db.models import UserProfile
from app.db.session import Database
from app.model.trainer import Trainer
from app.user.service import NO_DIRECTION, NO_MODEL, NOT_APPLIED

DIM = 8


def add_profiles(db: Database, sums: dict[str, np.ndarray]) -> None:
    now = utcnow()
    with db.write() as session:
        for user_id, vector_sum in sums.items():
            session.add(
                UserProfile(
                    user_id=user_id,
                    model_id="synthetic",
                    vector_sum=np.asarray(vector_sum, dtype="<f8").tobytes(),
                    ref_time=now.timestamp(),
                    event_count=2,
                    last_event_at=now,
                    updated_at=now,
                    version=1,
                    trained_version=0,
                )
            )


def axis(k: int, scale: float = 1.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(0, noise, DIM)
    v[k] += 1.0
    return v * scale


@pytest.fixture
def trained(db, make_settings) -> Trainer:  # type: ignore[no-untyped-def]
    """Three clear clusters along the first three axes, plus the profiles under test (the
    trainer must get past them too: a non-finite sum used to make every train step fail)."""
    crowd = {
        f"axis{k}-{i}": axis(k, noise=0.05, seed=10 * k + i) for k in range(3) for i in range(12)
    }
    add_profiles(db, crowd)
    add_profiles(
        db,
        {
            "huge": axis(1, scale=1e200),  # finite, but its squared norm overflows
            "cancelled": np.zeros(DIM),  # a like and a dislike of the same text
            "corrupt": np.full(DIM, np.inf),  # not finite: no direction at all
        },
    )
    settings = make_settings(clusters=3, min_users_first_fit=30, batch_size=64)
    trainer = Trainer(settings, embedding_model="synthetic", dim=DIM)
    trainer.restore(db)
    while trainer.step(db).rows:
        pass
    assert trainer.version > 0
    return trainer


def test_a_huge_finite_profile_is_placed_by_its_direction(client, trained):
    huge = client.get("/v1/users/huge/cluster").json()
    reference = client.get("/v1/users/axis1-0/cluster").json()
    assert huge["status"] == "assigned" and huge["reason"] is None
    assert huge["cluster_id"] == reference["cluster_id"]
    assert huge["distance"] < 0.5  # a zero vector would sit ~1 from every centre


@pytest.mark.parametrize("user_id", ["cancelled", "corrupt"])
def test_a_profile_without_direction_is_pending_with_a_reason(client, trained, user_id):
    answer = client.get(f"/v1/users/{user_id}/cluster").json()
    assert answer["status"] == "pending" and answer["cluster_id"] is None
    assert answer["reason"] == NO_DIRECTION


def test_pending_says_why_before_the_model_and_before_the_fold(client):
    client.post("/v1/events", json={"events": [{"user_id": "new", "type": "view", "text": "t"}]})
    answer = client.get("/v1/users/new/cluster").json()
    assert (answer["status"], answer["reason"]) == ("pending", NOT_APPLIED)


def test_pending_without_a_model_says_so(client, db):
    add_profiles(db, {"early": axis(0)})
    answer = client.get("/v1/users/early/cluster").json()
    assert (answer["status"], answer["reason"]) == ("pending", NO_MODEL)
