"""The quarantine: listed (API, CLI), counted (/v1/stats, /metrics), skipped by the work queue,
retried or dropped, and erased with its user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from app.db.base import utcnow
from app.db.models import Event
from app.db.session import Database
from app.event import repository as event_repository
from app.quarantine import service as quarantine_service
from tests.factories import post
from tests.observability.conftest import sample

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-key-0123456789abcdef"
READER = "read-key-0123456789abcdefgh"
REASON = "ValueError: vector_sum must be a finite 1-D array"


def seed(db: Database) -> dict[str, int]:
    """Five events of two users; alice's two 'bad' ones quarantined as the worker would."""
    post(
        db,
        [
            {"event_id": f"a{i}", "user_id": "alice", "type": "view", "text": f"a {i}"}
            for i in range(3)
        ]
        + [{"event_id": f"b{i}", "user_id": "bob", "type": "like", "text": "b"} for i in range(2)],
    )
    with db.read() as session:
        ids = dict(session.execute(select(Event.event_id, Event.id)).tuples().all())
    with db.write() as session:
        bad = [(ids["a1"], "alice"), (ids["a2"], "alice")]
        quarantine_service.quarantine(session, events=bad, reason=REASON, now=utcnow())
    return ids


def queue(db: Database) -> set[int]:
    with db.read() as session:
        return {e.id for e in event_repository.peek_pending(session, 100)}


def test_quarantined_events_leave_the_queue_and_are_listed(client, db):
    ids = seed(db)
    assert queue(db) == {ids["a0"], ids["b0"], ids["b1"]}
    listing = client.get("/v1/quarantine").json()
    assert [e["event_id"] for e in listing["events"]] == ["a1", "a2"]
    assert {e["user_id"] for e in listing["events"]} == {"alice"}
    assert all(e["reason"] == REASON for e in listing["events"])
    assert listing["next_after"] is None
    first = client.get("/v1/quarantine", params={"limit": 1}).json()
    assert len(first["events"]) == 1 and first["next_after"] == ids["a1"]
    rest = client.get("/v1/quarantine", params={"after": first["next_after"]}).json()
    assert [e["event_id"] for e in rest["events"]] == ["a2"]


def test_stats_metrics_and_the_user_answer_count_them(client, db):
    seed(db)
    events = client.get("/v1/stats").json()["events"]
    assert events == {**events, "received": 5, "pending": 3, "quarantined": 2, "applied": 0}
    text = client.get("/metrics").text
    assert sample(text, "interest_events_quarantined") == 2
    assert sample(text, "interest_events_pending") == 3
    alice = client.get("/v1/users/alice/cluster").json()
    assert alice["status"] == "pending" and alice["reason"]
    assert alice["profile"]["quarantined_events"] == 2 and alice["profile"]["pending_events"] == 1


def test_retry_puts_them_back_and_drop_deletes_them(client, db):
    ids = seed(db)
    assert client.post(f"/v1/quarantine/{ids['a1']}/retry").json() == {"released": 1}
    assert ids["a1"] in queue(db)
    assert client.post(f"/v1/quarantine/{ids['a1']}/retry").status_code == 404
    assert client.post(f"/v1/quarantine/{ids['b0']}/retry").status_code == 404  # not quarantined
    assert client.delete(f"/v1/quarantine/{ids['a2']}").json() == {"dropped": 1}
    assert client.delete(f"/v1/quarantine/{ids['b0']}").status_code == 404  # only quarantined
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 4
    assert client.get("/v1/quarantine").json()["events"] == []
    seed(db)  # a1 is applied-pending again, a2 quarantined anew (a new row id: it was dropped)
    assert client.post("/v1/quarantine/retry").json()["released"] >= 1
    assert client.get("/v1/stats").json()["events"]["quarantined"] == 0


def test_erasing_a_user_erases_their_quarantine(client, db):
    seed(db)
    assert client.delete("/v1/users/alice").status_code == 200
    assert client.get("/v1/quarantine").json()["events"] == []


def test_the_quarantine_needs_the_admin_scope(make_client, db):
    client = make_client(api_keys=f"{ADMIN}:admin,{READER}:read")
    assert client.get("/v1/quarantine").status_code == 401
    reader = {"Authorization": f"Bearer {READER}"}
    assert client.get("/v1/quarantine", headers=reader).status_code == 403
    assert client.post("/v1/quarantine/retry", headers=reader).status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert client.get("/v1/quarantine", headers=admin).status_code == 200


def test_the_cli_lists_retries_and_drops(db, database_url):
    ids = seed(db)
    env = os.environ | {"APP_DATABASE_URL": database_url}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app", "quarantine", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["event_id"] for r in rows] == ["a1", "a2"] and rows[0]["reason"] == REASON
    assert cli("retry", str(ids["a1"])).stdout.strip() == "1 event(s) released"
    assert cli("drop", str(ids["a2"])).stdout.strip() == "1 event(s) dropped"
    missing = cli("drop", str(ids["a2"]))
    assert missing.returncode == 1 and "no quarantined event" in missing.stderr
    assert cli("retry", "--all").stdout.strip() == "0 event(s) released"
    assert cli("list").stdout == ""
