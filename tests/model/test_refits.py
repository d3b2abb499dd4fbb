"""The model steers itself: first fit at 10 users per cluster, refits adopted only when better,
cluster ids that stay put, and the k report, through the trainer and the HTTP API."""

from __future__ import annotations

import math

from sqlalchemy import select

from app.clustering.refit import MIN_GAIN, RefitMark
from app.db.models import ModelCheckpoint, ModelRefit
from app.model.evaluation import evaluate
from app.model.trainer import Trainer
from app.user.service import NO_MODEL, NOT_APPLIED
from tests.factories import TOPICS, drain, post, topic_events, trainer_for


def settle(db, trainer: Trainer) -> None:  # type: ignore[no-untyped-def]
    """Step until nothing is left to train and no refit is running or undecided."""
    for _ in range(200):
        result = trainer.step(db)
        job = trainer.refits.job or trainer.consolidations.job
        if job is not None:
            job.future.result(timeout=120)  # decided or committed at the next step
            continue
        if not result.rows and result.version is None:
            return
    raise AssertionError("the trainer never settled")


def users_of(topic: str, n: int, prefix: str = "") -> list[dict]:
    texts = TOPICS[topic]
    return [
        {
            "event_id": f"{prefix}{topic}-{u}-{k}",
            "user_id": f"{prefix}{topic}-{u}",
            "type": "like",
            "text": texts[(u + k) % len(texts)],
        }
        for u in range(n)
        for k in range(3)
    ]


def test_first_fit_at_ten_users_per_cluster_and_pending_says_why(
    make_client, db, embedder, make_settings
):
    settings = make_settings(clusters=3)  # no APP_MIN_USERS_FIRST_FIT: the derived rule
    assert settings.first_fit_users == 30
    client = make_client(clusters=3)
    client.post("/v1/events", json={"events": topic_events(users_per_topic=9, events_per_user=3)})
    answer = client.get("/v1/users/space-1/cluster").json()
    assert answer["status"] == "pending"
    assert answer["reason"] == NOT_APPLIED
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.restore(db)
    assert trainer.step(db).version is None  # 27 users: not yet
    answer = client.get("/v1/users/space-1/cluster").json()
    assert answer["status"] == "pending"
    assert answer["reason"] == (
        f"{NO_MODEL}: 3 more users with a profile before the first model (it fits at 30)"
    )

    post(db, topic_events(users_per_topic=1, events_per_user=3, prefix="x"))
    drain(db, embedder, settings)
    assert trainer.step(db).version == 1
    answer = client.get("/v1/users/space-1/cluster").json()
    assert answer["status"] == "assigned" and answer["reason"] is None


def test_a_refit_is_adopted_when_better_and_recorded_either_way(db, embedder, make_settings):
    settings = make_settings(clusters=3, refit=True, refit_interval_seconds=0)
    post(db, users_of("space", 30))  # the first model sees only one topic
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.restore(db)
    assert trainer.step(db).version == 1 and trainer.generation == 1
    settle(db, trainer)  # the first refit: on the same users
    post(db, users_of("food", 15) + users_of("sport", 15))  # two new topics: growth
    drain(db, embedder, settings)
    settle(db, trainer)

    with db.read() as session:
        decisions = list(session.scalars(select(ModelRefit).order_by(ModelRefit.id)))
        growth = decisions[-1]
        checkpoint = session.get(ModelCheckpoint, growth.new_version)
    assert growth.trigger == "growth" and growth.population == 60
    current = growth.details["current_held_out_inertia"]
    candidate = growth.details["candidate_held_out_inertia"]
    assert candidate < current * (1 - MIN_GAIN)  # centres for one topic fit three badly
    assert growth.adopted and checkpoint is not None
    assert checkpoint.meta["refit"]["reason"] == growth.reason
    assert checkpoint.generation == trainer.generation
    assert checkpoint.meta["cluster_ids"] == trainer.ids

    # Another try on unchanged data: the candidate is no better, so nothing is committed.
    version = trainer.version
    trainer._mark = RefitMark(users=0, trained_rows=0, at=-math.inf)  # force a try
    settle(db, trainer)
    with db.read() as session:
        last = session.scalars(select(ModelRefit).order_by(ModelRefit.id.desc())).first()
    assert last is not None and last.id != growth.id
    assert not last.adopted and last.new_version is None and "not better" in last.reason
    assert trainer.version == version


def test_a_recluster_of_unchanged_data_moves_no_user_to_another_id(
    make_client, db, embedder, make_settings
):
    settings = make_settings(clusters=3, min_users_first_fit=30)
    client = make_client(clusters=3, min_users_first_fit=30)
    post(db, topic_events(users_per_topic=12, events_per_user=3))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.restore(db)
    settle(db, trainer)
    users = [f"{topic}-{u}" for topic in TOPICS for u in range(12)]
    before = {u: client.get(f"/v1/users/{u}/cluster").json()["cluster_id"] for u in users}
    _, seen = evaluate(
        db,
        trainer.model,
        version=trainer.version,
        settings=settings,
        embedding_model=embedder.model_id,
        ids=trainer.ids,
    )

    # An operator's recluster with another seed: new centres, in another order.
    other = trainer_for(make_settings(clusters=3, min_users_first_fit=30, seed=11), embedder)
    other.restore(db)
    version = other.recluster(db, clusters=3)
    with db.read() as session:
        meta = session.get(ModelCheckpoint, version).meta  # type: ignore[union-attr]
    assert meta["cluster_ids"] != [0, 1, 2]  # the premise: the raw order did change
    after = {u: client.get(f"/v1/users/{u}/cluster").json() for u in users}
    assert {a["model_version"] for a in after.values()} == {version}
    assert {u: a["cluster_id"] for u, a in after.items()} == before  # 0 users change id
    snapshot, _ = evaluate(
        db,
        other.model,
        version=version,
        settings=settings,
        embedding_model=embedder.model_id,
        previous=seen,
        ids=other.ids,
    )
    assert snapshot.changed_share == 0.0
    assert meta["refit"]["moved_share"] == 0.0 and meta["refit"]["born"] == []


def test_the_k_report_and_the_refits_are_published(make_client, db, embedder, make_settings):
    settings = make_settings(clusters=3, refit=True, refit_interval_seconds=0)
    client = make_client(clusters=3)
    assert client.get("/v1/clusters/k").status_code == 404
    post(db, topic_events(users_per_topic=15, events_per_user=3))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.restore(db)
    settle(db, trainer)

    report = client.get("/v1/clusters/k").json()
    assert report["mode"] == "fixed" and report["current_k"] == 3
    assert [c["k"] for c in report["candidates"]] == [2, 3]  # 36 fitted users: k <= 3
    assert report["chosen_k"] in (2, 3) and report["reason"].startswith(f"k={report['chosen_k']}")
    assert all(c["held_out_inertia"] > 0 for c in report["candidates"])
    history = client.get("/v1/clusters/metrics/history").json()
    assert history["refits"] and history["refits"][0]["trigger"] == "growth"
    assert history["refits"][0]["population"] == 45


def test_auto_adopts_the_k_its_report_chooses(db, embedder, make_settings):
    settings = make_settings(clusters="auto", refit=True, refit_interval_seconds=0)
    assert settings.first_fit_users == 80  # auto starts at k=8
    post(db, topic_events(users_per_topic=30, events_per_user=3))
    drain(db, embedder, settings)
    trainer = trainer_for(settings, embedder)
    trainer.restore(db)
    settle(db, trainer)
    with db.read() as session:
        decision = session.scalars(select(ModelRefit).order_by(ModelRefit.id.desc())).first()
    assert decision is not None
    report = decision.details["k_report"]
    assert trainer.model.n_clusters == report["best"] == decision.k
