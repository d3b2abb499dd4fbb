"""The compose stack, built and started once for the module (`make compose-test`)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.compose.stack import (
    Stack,
    copy_checkout,
    run,
    start_engine,
    stop_engine,
    torch_index,
    wait_for,
)
from tests.factories import TOPICS

USERS_PER_TOPIC = 1100  # 3,300 users: past APP_MIN_USERS_FIRST_FIT (3,000) as the stack runs
EVENTS_PER_USER = 3
SEED_USERS = USERS_PER_TOPIC * len(TOPICS)
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def engine() -> Iterator[dict[str, str]]:
    variables = start_engine()
    yield variables
    stop_engine()


@pytest.fixture(scope="module")
def stack(engine: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`docker compose build` and `docker compose up -d --wait`, as the README says, in a copy of
    this checkout; afterwards its containers, network, volume and images are gone."""
    images_before = set(run("docker", "images", "-aq").stdout.split())
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    with torch_index(tmp_path_factory.mktemp("index"), engine["DOCKER_BRIDGE_GATEWAY"]) as url:
        stack = Stack(
            checkout,
            project=f"compose-test-{os.getpid()}",
            settings={
                "PYTHON_IMAGE": engine["PYTHON_IMAGE"],
                "POSTGRES_IMAGE": engine["POSTGRES_IMAGE"],
                "TORCH_INDEX_URL": url,
            },
        )
        try:
            stack.timed("build", "build")
            stack.up_started = time.monotonic()
            stack.timed("up --wait", "up", "-d", "--wait")
            yield stack
        finally:
            TIMINGS.update(stack.timings)
            stack.close()
            stack.compose("down", "--volumes", "--remove-orphans", check=False)
            made = set(run("docker", "images", "-aq").stdout.split()) - images_before
            size = run(
                "docker", "image", "inspect", "--format", "{{.Size}}", stack.image, check=False
            ).stdout.strip()
            if size:
                TIMINGS["image size"] = int(size) / 1e9
            subprocess.run(
                ["docker", "image", "rm", "--force", stack.image, *made],
                capture_output=True,
                check=False,
            )


def seed_events() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Items of three topics, and users who each engage with three items of one topic; users
    u and u+5 of a topic engage with the same items."""
    items = [
        {"item_id": f"{topic}-{i}", "text": text}
        for topic, texts in TOPICS.items()
        for i, text in enumerate(texts)
    ]
    events = [
        {
            "event_id": f"seed-{topic}-{u}-{k}",
            "user_id": f"{topic}-{u}",
            "type": "like" if k else "view",
            "item_id": f"{topic}-{(u + k) % len(texts)}",
        }
        for topic, texts in TOPICS.items()
        for u in range(USERS_PER_TOPIC)
        for k in range(EVENTS_PER_USER)
    ]
    return events, items


@pytest.fixture(scope="module")
def first_model(stack: Stack) -> dict[str, Any]:
    """The seed events posted over HTTP, all folded, and the first model trained; /v1/stats."""
    events, items = seed_events()
    response = stack.http.post("/v1/items", json={"items": items})
    assert response.status_code < 300, response.text
    assert stack.post_events(events) == len(events)
    first = wait_for(
        "a first assigned cluster",
        lambda: stack.http.get("/v1/users/space-0/cluster").json().get("status") == "assigned",
        timeout=300,
        interval=0.5,
        diagnose=stack.logs,
    )
    assert first
    TIMINGS["up -> first assigned cluster"] = time.monotonic() - stack.up_started
    return wait_for(
        "every seed event folded",
        lambda: stack.all_applied(len(events)),
        timeout=300,
        diagnose=stack.logs,
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("compose stack")
        for name, value in TIMINGS.items():
            unit = " GB" if name == "image size" else " s"
            terminalreporter.write_line(f"{name}: {value:.2f}{unit}")
