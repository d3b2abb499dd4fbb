"""POST /v1/events on both databases: idempotency, validation, all-or-nothing, limits."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from app.db.models import Event
from app.db.session import Database


def stored(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def event(i: int, **fields: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "user_id": f"u{i % 7}",
        "type": "view",
        "text": f"text {i}",
    } | fields


def test_a_batch_posted_twice_is_stored_once(client, db):
    batch = {"events": [event(i) for i in range(1000)]}
    first = client.post("/v1/events", json=batch)
    second = client.post("/v1/events", json=batch)
    assert (first.status_code, first.json()) == (202, {"accepted": 1000, "duplicates": 0})
    assert (second.status_code, second.json()) == (202, {"accepted": 0, "duplicates": 1000})
    assert stored(db) == 1000


def test_a_batch_overlapping_stored_events_counts_only_the_new(client, db):
    """New rows are counted by the insert's row count (no RETURNING): a partial overlap."""
    client.post("/v1/events", json={"events": [event(i) for i in range(10)]})
    batch = {"events": [event(i) for i in range(5, 15)] + [event(14)]}
    assert client.post("/v1/events", json=batch).json() == {"accepted": 5, "duplicates": 6}
    assert stored(db) == 15
    with db.read() as session:
        assert session.scalar(select(Event.text).where(Event.event_id == "e12")) == "text 12"


def test_repeats_within_one_batch_are_duplicates(client, db):
    batch = {"events": [event(1), event(2), event(1), event(1, text="other text, same key")]}
    assert client.post("/v1/events", json=batch).json() == {"accepted": 2, "duplicates": 2}
    with db.read() as session:
        assert session.scalar(select(Event.text).where(Event.event_id == "e1")) == "text 1"


def test_events_without_event_id_are_all_kept(client, db):
    batch = {"events": [{"user_id": "u", "type": "like", "text": "same"}] * 3}
    assert client.post("/v1/events", json=batch).json() == {"accepted": 3, "duplicates": 0}
    assert stored(db) == 3


def test_stored_fields_round_trip(client, db):
    when = "2026-01-02T03:04:05+02:00"
    body = {"events": [event(1, type="purchase", item_id="i9", timestamp=when, weight=-0.5)]}
    client.post("/v1/events", json=body)
    with db.read() as session:
        row = session.scalars(select(Event)).one()
    assert (row.user_id, row.type, row.item_id, row.weight) == ("u1", "purchase", "i9", -0.5)
    assert row.occurred_at == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert row.applied_at is None
    assert abs((row.received_at - datetime.now(UTC)).total_seconds()) < 60


def test_missing_timestamp_defaults_to_now(client, db):
    client.post("/v1/events", json={"events": [event(1)]})
    with db.read() as session:
        row = session.scalars(select(Event)).one()
    assert row.occurred_at == row.received_at


# Computed at import: far enough ahead to stay "future" however long the suite runs first.
FUTURE = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
NEAR_FUTURE = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()

INVALID = {
    "empty user_id": ({"user_id": ""}, "user_id"),
    "long user_id": ({"user_id": "u" * 129}, "user_id"),
    "missing user_id": ({"user_id": None}, "user_id"),
    "unknown type": ({"type": "teleport"}, "type"),
    "long event_id": ({"event_id": "e" * 129}, "event_id"),
    "long item_id": ({"item_id": "i" * 129}, "item_id"),
    "long text": ({"text": "x" * 4001}, "text"),
    "no text nor item": ({"text": None}, None),
    "naive timestamp": ({"timestamp": "2026-01-01T00:00:00"}, "timestamp"),
    "future timestamp": ({"timestamp": FUTURE}, "timestamp"),
    "not a timestamp": ({"timestamp": "yesterday"}, "timestamp"),
    "string weight": ({"weight": "heavy"}, "weight"),
    "unknown field": ({"colour": "red"}, "colour"),
}


@pytest.mark.parametrize("change", INVALID.values(), ids=INVALID.keys())
def test_each_invalid_event_rejects_the_whole_batch(client, db, change):
    fields, field = change
    bad = {k: v for k, v in (event(1) | fields).items() if v is not None}
    response = client.post("/v1/events", json={"events": [event(0), bad, event(2)]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {problem["status"], problem["title"]} == {422, "Validation failed"}
    assert {e["index"] for e in problem["errors"]} == {1}
    if field:
        assert any(e["field"].endswith(field) for e in problem["errors"])
    assert stored(db) == 0


def test_every_bad_index_is_listed(client, db):
    events = [event(0), event(1, type="nope"), event(2), event(3, user_id=""), event(4, text="")]
    problem = client.post("/v1/events", json={"events": events}).json()
    assert sorted({e["index"] for e in problem["errors"]}) == [1, 3, 4]
    assert "[1, 3, 4]" in problem["detail"]
    assert stored(db) == 0


def test_a_timestamp_slightly_ahead_is_accepted(client, db):
    assert (
        client.post("/v1/events", json={"events": [event(1, timestamp=NEAR_FUTURE)]}).status_code
        == 202
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_weights_are_refused(client, db, literal):
    raw = '{"events": [{"user_id": "u", "type": "view", "text": "t", "weight": ' + literal + "}]}"
    response = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert stored(db) == 0


@pytest.mark.parametrize(
    "body",
    ['{"events": []}', "{}", "[]", '{"events": "x"}', "not json", '{"events": [1]}', ""],
)
def test_malformed_bodies_are_problems(client, db, body):
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["status"] == 422
    assert stored(db) == 0


def test_more_events_than_the_limit_are_refused(make_client, db):
    client = make_client(max_events_per_request=10)
    response = client.post("/v1/events", json={"events": [event(i) for i in range(11)]})
    assert response.status_code == 422
    assert "at most 10" in response.json()["errors"][0]["message"]
    assert (
        client.post("/v1/events", json={"events": [event(i) for i in range(10)]}).status_code == 202
    )


def test_a_body_over_the_size_limit_is_413(make_client, db):
    client = make_client(max_body_bytes=4096)
    body = json.dumps({"events": [event(i, text="x" * 1000) for i in range(5)]})
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert stored(db) == 0


def test_a_streamed_body_over_the_limit_is_413(make_client, db):
    client = make_client(max_body_bytes=4096)

    def chunks():
        yield b'{"events": ['
        for i in range(200):
            yield json.dumps(event(i)).encode() + b","
        yield b"]}"

    response = client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert stored(db) == 0


def test_concurrent_single_events_share_writes_and_each_gets_its_own_answer(client, db):
    """Group commit: small requests that arrive together are stored by one statement, yet
    every request is answered for its own events, after they are durable; the first request
    of a group to send an event_id stores it and the others count it as a duplicate."""
    inserts = []

    @sa_event.listens_for(client.app.state.db.engine, "before_cursor_execute")
    def _count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO EVENT"):
            inserts.append(statement)

    def send(i: int):  # type: ignore[no-untyped-def]
        shared = {"event_id": f"shared{i % 8}"}  # 8 ids, each sent by 8 requests
        body = {"events": [event(i, **shared), event(1000 + i)]}
        return client.post("/v1/events", json=body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(64)))
    assert {a.status_code for a in answers} == {202}
    results = [a.json() for a in answers]
    assert all(r["accepted"] + r["duplicates"] == 2 for r in results)
    assert sum(r["accepted"] for r in results) == 64 + 8 == stored(db)
    assert len(inserts) < 64  # requests were grouped (each alone would be 64 statements)
