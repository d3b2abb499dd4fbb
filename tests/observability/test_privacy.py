"""Privacy (issue 9): no user or item id in any log line at any level, over a whole run of the
real server and its in-process worker: ingest, queries, every kind of refusal, a poison pill the
worker must quarantine, erasure, and finally a database that breaks under it."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from app.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
USERS = ["jane.doe@example.com", "john.roe@example.org", "amy+tag@example.net"]
POISON_USER = "poison.pill@example.net"
ITEM = "item-7c1f-secret"
EVENT_ID = "evt-secret-0001"
SECRETS = [*USERS, POISON_USER, ITEM, EVENT_ID]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def insert_poison(database: Path) -> None:
    """Events stored before weights were bounded: together they overflow a profile sum."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO event (event_id, user_id, type, text, weight, occurred_at, received_at)"
            " VALUES (?, ?, 'like', 'an overflowing like', 1.7e308, ?, ?)",
            [(f"poison-{i}", POISON_USER, now, now) for i in range(20)],
        )


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_whole_run_logs_no_user_or_item_id(tmp_path, log_format):
    database = tmp_path / "run.db"
    url = f"sqlite:///{database}"
    upgrade(url)
    port = free_port()
    env = os.environ | {
        "APP_DATABASE_URL": url,
        "APP_LOG_LEVEL": "DEBUG",
        "APP_LOG_FORMAT": log_format,
        "APP_WORKER": "inline",
        "APP_CLUSTERS": "2",
        "APP_MIN_USERS_FIRST_FIT": "2",
        "APP_POLL_INTERVAL_SECONDS": "0.05",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            wait_for(lambda: http.get("/readyz").status_code == 200, 120, "the model to load")
            run_traffic(http, database)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = log_path.read_text()
    assert text.count("\n") > 20 and "app.access" in text  # the run did log, at every level
    assert "quarantined" in text  # the poison pill was isolated, and said so
    for secret in SECRETS:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            assert form not in text, f"{form!r} appears in the logs"


def run_traffic(http: httpx.Client, database: Path) -> None:
    assert http.put(f"/v1/items/{ITEM}", json={"text": "a secret catalogue item"}).is_success
    events = [
        {"event_id": EVENT_ID if u == USERS[0] else None, "user_id": u, "type": "like", "text": t}
        for u in USERS
        for t in ("space rockets and planets", "cooking pasta at home")
    ] + [{"user_id": USERS[1], "type": "view", "item_id": ITEM}]
    assert http.post("/v1/events", json={"events": events}).status_code == 202
    insert_poison(database)
    # Every kind of refusal, each naming an id somewhere in the request.
    bad = {"user_id": USERS[0], "type": "teleport", "item_id": ITEM}
    assert http.post("/v1/events", json={"events": [bad]}).status_code == 422
    body = b'{"events": [{"user_id": "jane.doe@example.com", "type": "view", "text": "t"}]}'
    assert http.post("/v1/events", content=body).status_code == 415
    assert http.get(f"/v1/users/{quote(USERS[0])}x/cluster").status_code == 404
    assert http.get(f"/v1/users/{USERS[0]}/cluster/").status_code == 404
    assert http.get(f"/v1/users/{USERS[0]}%FF/cluster").status_code == 400
    assert http.get(f"/v1/users/{'u' * 200}{USERS[0]}/cluster").status_code == 422
    assert http.put(f"/v1/items/{ITEM}/x", json={"text": "t"}).status_code in (404, 405)
    wait_for(
        lambda: http.get("/v1/stats").json()["events"]["pending"] == 0,
        120,
        "every event to be applied or quarantined",
    )
    wait_for(lambda: http.get("/v1/stats").json()["model"]["version"], 60, "a model")
    for user in USERS:
        assert http.get(f"/v1/users/{quote(user)}/cluster").json()["status"] == "assigned"
        assert http.get(f"/v1/users/{quote(user)}/cluster/history").status_code == 200
    assert http.get(f"/v1/users/{quote(POISON_USER)}/cluster").status_code == 200
    assert len(http.get("/v1/quarantine").json()["events"]) >= 1
    assert http.delete(f"/v1/users/{quote(USERS[2])}").status_code == 200
    assert http.get("/metrics").status_code == 200
    # The database breaks under the running service: errors are logged, ids are not.
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TABLE user_profile")
    assert http.get(f"/v1/users/{quote(USERS[0])}/cluster").status_code == 503
    http.post("/v1/events", json={"events": [{"user_id": USERS[1], "type": "view", "text": "x"}]})
    time.sleep(1.0)  # the worker meets the broken table too
