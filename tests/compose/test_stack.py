"""`docker compose up` in a real Docker engine, from the committed Dockerfile and
docker-compose.yml and a .env made from .env.example (the README's Deploy section). The base
images are local stand-ins built from Debian's packages (no registry is reachable in CI).

The tests share one stack and run in order: up, clustering over HTTP, the trainer killed,
down/up, down -v. The image is then checked on its own with networking off."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.compose.conftest import SEED_USERS, TIMINGS
from tests.compose.stack import Stack, run, wait_for

pytestmark = pytest.mark.compose


def health(container: str) -> str:
    return run(
        "docker", "inspect", "--format", "{{.State.Health.Status}}", container
    ).stdout.strip()


def test_up_wait_brings_every_service_up(stack: Stack) -> None:
    listing = stack.compose("ps", "--all", "--format", "json").stdout
    states = [json.loads(line) for line in listing.splitlines() if line.strip()]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for state in states:
        by_service.setdefault(state["Service"], []).append(state)
    assert [s["State"] for s in by_service["migrate"]] == ["exited"]
    assert by_service["migrate"][0]["ExitCode"] == 0
    for service, replicas in (("postgres", 1), ("api", 1), ("worker", 2)):
        assert [s["Health"] for s in by_service[service]] == ["healthy"] * replicas, service
    ready = stack.http.get("/readyz")
    assert ready.status_code == 200, ready.text


def test_events_posted_over_http_are_folded_and_clustered(
    stack: Stack, first_model: dict[str, Any]
) -> None:
    assert first_model["model"]["version"] >= 1
    assert first_model["users"] == SEED_USERS
    space, twin, food = (
        stack.http.get(f"/v1/users/{user}/cluster").json()
        for user in ("space-0", "space-5", "food-0")
    )
    assert space["status"] == "assigned" and space["model_version"] >= 1
    assert space["profile"]["events"] == 3
    assert twin["cluster_id"] == space["cluster_id"]  # the same three items, the same cluster
    assert food["cluster_id"] != space["cluster_id"]

    def quality_snapshot() -> dict[str, Any] | None:
        # The first model fits early (10 users per cluster), so early snapshots cover only part
        # of the population: wait for one taken after every user was folded.
        response = stack.http.get("/v1/clusters/metrics")
        if response.status_code != 200 or response.json()["n_users"] < 3000:
            return None
        return response.json()

    metrics = wait_for("a quality snapshot of every user", quality_snapshot, timeout=300)
    assert metrics["n_users"] >= 3000 and metrics["n_clusters"] == 8
    assert 0 < metrics["silhouette"] <= 1

    prometheus = stack.http.get("/metrics")
    assert prometheus.status_code == 200
    assert re.search(r"(?m)^interest_events_applied 9900\.0$", prometheus.text), prometheus.text
    assert re.search(r"(?m)^interest_model_version [1-9]", prometheus.text)


def test_killing_the_trainer_hands_training_to_the_standby_losing_nothing(
    stack: Stack, first_model: dict[str, Any]
) -> None:
    trainer = wait_for("one trainer", lambda: stack.trainers(), timeout=60)
    assert len(trainer) == 1, trainer
    (standby,) = set(stack.containers("worker")) - set(trainer)
    version_before = stack.stats()["model"]["version"]

    received = stack.stats()["events"]["received"]
    new_users = [
        {
            "event_id": f"late-{u}-{k}",
            "user_id": f"late-{u}",
            "type": "view",
            "item_id": f"sport-{k}",
        }
        for u in range(300)
        for k in range(2)
    ]
    half = len(new_users) // 2
    received += stack.post_events(new_users[:half])
    run("docker", "kill", trainer[0])  # SIGKILL: no shutdown, the lock dies with the connection
    received += stack.post_events(new_users[half:])

    assert wait_for(
        "the standby to train",
        lambda: stack.trainers() == [standby],
        timeout=120,
        diagnose=stack.logs,
    )
    after = wait_for(
        "every event folded", lambda: stack.all_applied(received), timeout=180, diagnose=stack.logs
    )
    newest = wait_for(
        "a model version trained by the standby",
        lambda: (v := stack.stats()["model"]["version"]) > version_before and v,
        timeout=120,
        diagnose=stack.logs,
    )
    assert after["users"] == SEED_USERS + 300
    late = stack.http.get("/v1/users/late-299/cluster").json()
    assert late["profile"]["events"] == 2
    logs = stack.compose("logs", "--no-color", "worker").stdout
    # It restored the checkpoint the dead trainer left, not a fresh model.
    taken_over = re.findall(r"now the trainer \(model version (\d+)\)", logs)
    assert any(int(v) >= version_before for v in taken_over), logs[-3000:]
    assert newest > version_before

    stack.compose("up", "-d", "--wait")  # the killed replica comes back, as a standby
    assert len([c for c in stack.containers("worker") if health(c) == "healthy"]) == 2


def test_down_then_up_keeps_the_data_and_the_model(
    stack: Stack, first_model: dict[str, Any]
) -> None:
    before = wait_for(
        "a quiet pipeline",
        lambda: stack.all_applied(stack.stats()["events"]["received"]),
        timeout=120,
    )
    cluster_before = stack.http.get("/v1/users/space-0/cluster").json()
    stack.timed("down", "down")
    assert stack.containers("api") == []
    stack.timed("up --wait (existing volume)", "up", "-d", "--wait")

    after = stack.stats()
    assert after["events"] == before["events"]
    assert after["users"] == before["users"]
    assert after["model"]["version"] >= before["model"]["version"]
    cluster_after = stack.http.get("/v1/users/space-0/cluster").json()
    assert cluster_after["status"] == "assigned"
    assert cluster_after["model_version"] >= cluster_before["model_version"]


def test_down_with_volumes_removes_the_data(stack: Stack) -> None:
    volume = f"{stack.project}_pgdata"
    assert volume in run("docker", "volume", "ls", "--format", "{{.Name}}").stdout.split()
    stack.compose("down", "--volumes")
    assert volume not in run("docker", "volume", "ls", "--format", "{{.Name}}").stdout.split()


def test_the_image_runs_unprivileged_and_becomes_ready_with_networking_off(stack: Stack) -> None:
    config = json.loads(run("docker", "image", "inspect", stack.image).stdout)[0]
    assert config["Config"]["User"] == "app"
    assert "/readyz" in " ".join(config["Config"]["Healthcheck"]["Test"])
    size = config["Size"] / 1e9
    assert size < 2.0, f"the image is {size:.2f} GB"

    # The image alone, as `docker run` gives it: SQLite under var/, the worker in-process, and
    # no network at all: the embedding model must come from the image.
    name = f"{stack.project}-offline"
    run(
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        stack.image,
        "sh",
        "-c",
        "python -m app migrate && exec python -m app serve --host 127.0.0.1 --port 8000",
    )
    try:
        started = time.monotonic()
        wait_for(
            "the offline container to turn healthy",
            lambda: health(name) == "healthy",
            timeout=240,
            interval=2,
            diagnose=lambda: run("docker", "logs", "--tail", "40", name, check=False).stderr,
        )
        TIMINGS["docker run --network none -> healthy"] = time.monotonic() - started
        assert run("docker", "exec", name, "id", "-u").stdout.strip() == "10001"
        probe = run("docker", "exec", name, "python", "-c", READY_AND_FOLDED).stdout
        assert json.loads(probe) == {"ready": "ready", "model": "loaded", "applied": 1}
    finally:
        run("docker", "rm", "--force", name, check=False)


# Inside the offline container: readiness, then one event in and folded by the in-process
# worker (which encodes its text with the model baked into the image).
READY_AND_FOLDED = """
import json, time, urllib.request
def call(path, body=None):
    request = urllib.request.Request('http://127.0.0.1:8000' + path,
        data=json.dumps(body).encode() if body else None,
        headers={'Content-Type': 'application/json'})
    return json.load(urllib.request.urlopen(request, timeout=10))
ready = call('/readyz')
call('/v1/events', {'events': [{'user_id': 'u', 'type': 'view', 'text': 'rocket launch'}]})
for _ in range(120):
    applied = call('/v1/stats')['events']['applied']
    if applied:
        break
    time.sleep(0.5)
print(json.dumps({'ready': ready['status'], 'model': ready['checks']['embedding_model'],
                  'applied': applied}))
"""
