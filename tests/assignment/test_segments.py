"""Segments: change-only history, members paging under training, the change feed across a
restart, the JSON Lines export, retention, the sweep, and erasure from all of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.assignment import service as assignment_service
from app.db.base import utcnow
from app.db.models import ClusterAssignment
from app.model.trainer import Trainer
from tests.factories import TOPICS, drain, topic_events


@pytest.fixture
def settings(make_settings):
    return make_settings(clusters=3, min_users_first_fit=30, batch_size=64)


def train(db, embedder, settings, trainer: Trainer | None = None) -> Trainer:
    drain(db, embedder, settings)
    if trainer is None:
        trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
        trainer.restore(db)
    while trainer.step(db).rows:
        pass
    return trainer


def move(client, users: list[str], topic: str) -> None:
    """Make these users' recent taste `topic`: enough heavy events to outweigh the old ones."""
    texts = TOPICS[topic]
    client.post(
        "/v1/events",
        json={
            "events": [
                {"user_id": u, "type": "purchase", "text": texts[k % len(texts)]}
                for u in users
                for k in range(8)
            ]
        },
    )


def cluster_of(client, user: str) -> int:
    return client.get(f"/v1/users/{user}/cluster").json()["cluster_id"]


def changes_in_db(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(ClusterAssignment)) or 0


def test_history_records_a_change_only_when_the_cluster_changes(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    assert changes_in_db(db) == 36  # every first assignment is a change
    client.post(
        "/v1/events", json={"events": [{"user_id": "food-1", "type": "like", "text": "pizza"}]}
    )
    train(db, embedder, settings, trainer)  # food-1 trained again, still in the food cluster
    history = client.get("/v1/users/food-1/cluster/history").json()["assignments"]
    assert len(history) == 1 and changes_in_db(db) == 36

    food = cluster_of(client, "food-1")
    move(client, ["space-0"], "food")
    train(db, embedder, settings, trainer)
    assert cluster_of(client, "space-0") == food
    history = client.get("/v1/users/space-0/cluster/history").json()["assignments"]
    assert [h["cluster_id"] for h in history][-1] == food and len(history) == 2
    changes = client.get("/v1/changes").json()["changes"]
    last = changes[-1]
    assert (last["user_id"], last["cluster_id"]) == ("space-0", food)
    assert last["previous_cluster_id"] == history[0]["cluster_id"] != food


def test_member_pages_neither_skip_nor_repeat_while_training_runs(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    space = cluster_of(client, "space-0")
    before = {f"space-{u}" for u in range(12)}
    pages, after, moves = [], None, iter([["space-1", "space-7"], ["food-2", "food-9"], []])
    while True:
        query = f"/v1/clusters/{space}/members?limit=4" + (f"&after={after}" if after else "")
        page = client.get(query).json()
        pages.append([m["user_id"] for m in page["members"]])
        assert all(m["model_version"] <= page["latest_model_version"] for m in page["members"])
        after = page["next_after"]
        if after is None:
            break
        # training between pages: two members leave, two outsiders join
        leaving = next(moves, [])
        move(client, leaving, "food" if leaving and leaving[0].startswith("space") else "space")
        train(db, embedder, settings, trainer)
    seen = [u for page in pages for u in page]
    assert len(seen) == len(set(seen)) and seen == sorted(seen)  # never repeated
    still = {u for u in before if cluster_of(client, u) == space}
    assert len(still) == 10 and still <= set(seen)  # none that stayed a member was skipped


def poll(client, after: int, limit: int = 5) -> tuple[list[dict], int]:
    """Poll the feed until it is drained, `limit` changes at a time."""
    got = []
    while True:
        answer = client.get(f"/v1/changes?after={after}&limit={limit}").json()
        got += answer["changes"]
        if answer["next_after"] == after:
            return got, after
        after = answer["next_after"]


def test_the_change_feed_delivers_every_change_once_across_a_restart(
    make_client, db, embedder, settings
):
    client = make_client()
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    got, cursor = poll(client, 0)
    assert len(got) == 36
    # the user with the newest change is erased, then a new change is recorded: its cursor must
    # be new (SQLite would hand out the erased row's id again without AUTOINCREMENT)
    newest = got[-1]["user_id"]
    assert client.delete(f"/v1/users/{newest}").status_code == 200
    move(client, ["sport-3"], "space")
    train(db, embedder, settings, trainer)
    client.__exit__(None, None, None)  # the service stops ...

    restarted = make_client()  # ... and starts again: the consumer goes on from its cursor
    more, cursor = poll(restarted, cursor)
    assert [c["user_id"] for c in more] == ["sport-3"]
    got += more
    cursors = [c["cursor"] for c in got]
    assert cursors == sorted(set(cursors))  # in order, each once
    copy: dict[str, int] = {}
    for change in got:
        copy[change["user_id"]] = change["cluster_id"]
    del copy[newest]  # the consumer's own erasure
    exported = restarted.get("/v1/assignments")
    current = {r["user_id"]: r["cluster_id"] for r in map(json.loads, exported.text.splitlines())}
    assert copy == current and int(exported.headers["changes-cursor"]) == cursor
    assert newest not in {c["user_id"] for c in poll(restarted, 0)[0]}  # erased from the feed


def test_retention_drops_old_changes_and_refuses_a_cursor_that_lost_some(client, db):
    old = utcnow() - timedelta(days=40)
    rows = [
        {
            "user_id": f"u{i}",
            "model_version": 1,
            "cluster_id": 0,
            "distance": 0.5,
            "assigned_at": old,
        }
        for i in range(3)
    ]
    with db.write() as session:
        assignment_service.record(session, rows, retention_days=100)
    assert [c["user_id"] for c in client.get("/v1/changes").json()["changes"]] == ["u0", "u1", "u2"]
    cursor = client.get("/v1/changes?limit=1").json()["next_after"]
    moved = [{**rows[2], "cluster_id": 1, "model_version": 2, "assigned_at": utcnow()}]
    with db.write() as session:
        assignment_service.record(session, moved, retention_days=30)
    # the three old changes are older than 30 days: gone
    left = client.get("/v1/changes").json()["changes"]
    assert [(c["user_id"], c["cluster_id"]) for c in left] == [("u2", 1)]
    expired = client.get(f"/v1/changes?after={cursor}")  # it had read u0's change only
    assert expired.status_code == 410 and "GET /v1/assignments" in expired.json()["detail"]
    caught_up = client.get(f"/v1/changes?after={left[0]['cursor'] - 1}").json()["changes"]
    assert caught_up == left  # a consumer that had read every old change misses nothing
    # the newest change is kept past the retention, so that the feed's position stays known
    with db.write() as session:
        assignment_service.record(session, [], retention_days=1e-9)
    assert client.get("/v1/changes").json()["changes"] == left


def test_the_export_streams_every_assignment_with_its_model_version(
    client, db, embedder, settings, database_url
):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    response = client.get("/v1/assignments")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert [r["user_id"] for r in rows] == sorted(f"{t}-{u}" for t in TOPICS for u in range(12))
    assert all(r["model_version"] <= trainer.version for r in rows)
    assert all(r["cluster_id"] == cluster_of(client, r["user_id"]) for r in rows)
    assert int(response.headers["model-version"]) == trainer.version

    env = os.environ | {"APP_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "app", "export"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == response.text
    cursor = response.headers["changes-cursor"]
    assert f"36 assignments exported (changes cursor {cursor}) in " in done.stderr


def test_the_sweep_brings_every_assignment_to_a_new_generation(client, db, embedder, settings):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    version = trainer.recluster(db, clusters=2)  # centres move without training anyone
    assignment_service.sweep(db, trainer.model, ids=trainer.ids, version=version)
    exported = client.get("/v1/assignments").text.splitlines()
    for row in map(json.loads, exported):
        assert row["cluster_id"] == cluster_of(client, row["user_id"]), row
    changed = [
        c
        for c in client.get("/v1/changes?limit=1000").json()["changes"]
        if c["model_version"] == version
    ]
    assert changed and all(c["previous_cluster_id"] is not None for c in changed)


def test_a_sweep_of_an_older_version_never_overwrites_a_newer_assignment(
    client, db, embedder, settings
):
    """The sweep runs on the evaluation's thread while the trainer goes on recording newer
    versions: a late sweep page must leave those alone and record no move for them."""
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    trainer = train(db, embedder, settings)
    old_model, old_ids, old_version = trainer.model, list(trainer.ids), trainer.version
    trainer.recluster(db, clusters=2)
    assignment_service.sweep(db, trainer.model, ids=trainer.ids, version=trainer.version)
    before = client.get("/v1/assignments").text
    feed_before = changes_in_db(db)
    # The old generation's answers differ for some users, but are older than what is recorded.
    assert assignment_service.sweep(db, old_model, ids=old_ids, version=old_version) == 0
    assert client.get("/v1/assignments").text == before
    assert changes_in_db(db) == feed_before


def test_erasure_removes_the_user_from_segments_feed_export_and_recommendations(
    client, db, embedder, settings
):
    client.post("/v1/events", json={"events": topic_events(users_per_topic=12, events_per_user=2)})
    train(db, embedder, settings)
    cluster = cluster_of(client, "food-3")
    assert client.delete("/v1/users/food-3").json()["history"] == 1
    members = client.get(f"/v1/clusters/{cluster}/members?limit=1000").json()["members"]
    assert "food-3" not in {m["user_id"] for m in members} and len(members) >= 11
    assert "food-3" not in client.get("/v1/assignments").text
    assert "food-3" not in {
        c["user_id"] for c in client.get("/v1/changes?limit=1000").json()["changes"]
    }
    for path in ("recommendations", "interests", "cluster", "cluster/history"):
        assert client.get(f"/v1/users/food-3/{path}").status_code == 404


@pytest.mark.postgres_only
def test_writers_of_changes_commit_their_ids_in_order(client, db):
    """A second writer waits for the first one's commit: otherwise it could commit higher ids
    first, a poller would move its cursor past them, and never see the first writer's ids."""
    now = utcnow()

    def rows(prefix: str) -> list[dict]:
        return [
            {"user_id": f"{prefix}{i}", "model_version": 1, "cluster_id": 0, "distance": 0.1,
             "assigned_at": now}
            for i in range(3)
        ]  # fmt: skip

    inserted, release, second_done = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with db.write() as session:
            assignment_service.record(session, rows("a"), retention_days=30)
            inserted.set()
            release.wait(30)

    def second() -> None:
        with db.write() as session:
            assignment_service.record(session, rows("b"), retention_days=30)
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inserted.wait(30)
    threads[1].start()
    assert not second_done.wait(1.0)  # waits for the first writer's commit
    assert client.get("/v1/changes").json()["changes"] == []
    release.set()
    for thread in threads:
        thread.join(30)
    changes = client.get("/v1/changes").json()["changes"]
    assert [c["user_id"] for c in changes] == ["a0", "a1", "a2", "b0", "b1", "b2"]
