"""Fuzzing against the app's own OpenAPI schema, plus hand-written hostile inputs.

Whatever arrives, the answer is never a 5xx, and every error is problem+json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import func, inspect, select

from app.config import load_settings
from app.db.models import Event
from app.db.session import Database
from app.main import create_app

PROBLEM_FIELDS = {"type", "title", "status", "detail"}


def problem_json(ctx, response, case):  # type: ignore[no-untyped-def]
    """Every 4xx/5xx is application/problem+json with type, title, status and detail."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered as {content_type!r}"
    )
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS, f"problem fields missing: {body}"
    assert body["status"] == response.status_code
    return None


# The app's own OpenAPI document, read once from an app that never starts. It lists the event
# types as an enum, so the fuzzer also reaches the code behind a valid batch.
schema = schemathesis.openapi.from_dict(create_app(load_settings(api_keys={})).openapi())


@pytest.fixture
def fuzzed_app(db: Database, make_settings) -> Iterator[FastAPI]:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(max_events_per_request=50))
    yield app
    # Schemathesis starts the app's lifespan on the first call and keeps it: end it here.
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_and_errors_are_problems(case, fuzzed_app):  # type: ignore[no-untyped-def]
    case.call_and_validate(
        app=fuzzed_app,
        additional_checks=[problem_json],
        excluded_checks=[positive_data_acceptance],
    )


# Hand-written hostile inputs ------------------------------------------------------------------


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    return body


def stored_events(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


JSON = {"content-type": "application/json"}


def post_raw(client, body: bytes):  # type: ignore[no-untyped-def]
    return client.post("/v1/events", content=body, headers=JSON)


def test_megabyte_strings_are_refused(client, db):
    huge = "x" * 1_000_000
    for field in ("user_id", "text", "event_id", "item_id", "type"):
        event = {"user_id": "u", "type": "view", "text": "t", field: huge}
        body = assert_problem(client.post("/v1/events", json={"events": [event]}), 422)
        assert huge not in json.dumps(body)  # the error does not echo a megabyte back
    assert_problem(client.put("/v1/items/i", json={"text": huge}), 422)
    assert_problem(client.get(f"/v1/users/{'u' * 10_000}/cluster"), 422)
    assert stored_events(db) == 0


def test_deeply_nested_json_is_refused(client, db):
    for depth in (1_000, 100_000):
        nested = b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"
        assert_problem(post_raw(client, nested), 422)
        objects = b'{"events": [{"user_id": "u", "type": "view", "text": ' + b'{"a":' * depth
        assert_problem(post_raw(client, objects + b"1" + b"}" * depth + b"}]}"), 422)
    assert stored_events(db) == 0


@pytest.mark.parametrize(
    "weight", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b'"NaN"', b'"inf"', b"true", b'"3"']
)
def test_weights_that_are_not_finite_numbers_are_refused(client, db, weight):
    body = b'{"events": [{"user_id": "u", "type": "view", "text": "t", "weight": ' + weight + b"}]}"
    errors = assert_problem(post_raw(client, body), 422)["errors"]
    assert [e["field"] for e in errors] == ["events.weight"]
    assert stored_events(db) == 0


def test_invalid_utf8_is_refused(client, db):
    for raw in (
        b'{"events": [{"user_id": "\xff\xfe", "type": "view", "text": "t"}]}',
        b'{"events": [{"user_id": "u", "type": "view", "text": "\xc3\x28"}]}',
        b"\xff" * 100,
        b'{"events": [{"user_id": "\\ud800", "type": "view", "text": "t"}]}',  # lone surrogate
    ):
        assert_problem(post_raw(client, raw), 422)
    assert stored_events(db) == 0
    invalid = b'{"text": "\xff"}'
    assert_problem(client.put("/v1/items/a", content=invalid, headers=JSON), 422)


def test_nul_characters_are_refused_everywhere(client, db):
    """PostgreSQL text cannot hold NUL: it must be a 422 on both backends, never a 500."""
    for field in ("user_id", "text", "event_id", "item_id"):
        event = {"user_id": "u", "type": "view", "text": "t", field: "a\x00b"}
        assert_problem(client.post("/v1/events", json={"events": [event]}), 422)
    assert_problem(
        client.post("/v1/items", json={"items": [{"item_id": "i", "text": "\x00"}]}), 422
    )
    assert_problem(client.put("/v1/items/i", json={"text": "a\x00"}), 422)
    assert_problem(client.put("/v1/items/a%00b", json={"text": "t"}), 422)
    assert_problem(client.get("/v1/users/a%00b/cluster"), 422)
    assert_problem(client.get("/v1/users/a%00b/cluster/history"), 422)
    assert_problem(client.delete("/v1/users/a%00b"), 422)
    assert stored_events(db) == 0


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+00:01",  # year 0 once in UTC: used to be a 500
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "2024-01-01T00:00:00",  # no zone
        0,
        1_700_000_000,
    ],
)
def test_timestamps_out_of_range_or_not_iso_are_refused(client, db, timestamp):
    event = {"user_id": "u", "type": "view", "text": "t", "timestamp": timestamp}
    errors = assert_problem(client.post("/v1/events", json={"events": [event]}), 422)["errors"]
    assert [e["field"] for e in errors] == ["events.timestamp"]
    assert stored_events(db) == 0


SQL_IDS = [
    "x'; DROP TABLE event; --",
    "1 OR 1=1",
    'a"; DELETE FROM user_profile; --',
    "%' UNION SELECT * FROM model_checkpoint --",
    "\\'; TRUNCATE item; --",
]


def test_sql_in_ids_is_stored_verbatim(client, db):
    events = [
        {"event_id": sql, "user_id": sql, "type": "view", "item_id": sql, "text": sql}
        for sql in SQL_IDS
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 202 and response.json()["accepted"] == len(SQL_IDS)
    assert client.put(f"/v1/items/{SQL_IDS[2]}", json={"text": SQL_IDS[0]}).status_code == 200
    with db.read() as session:
        stored = {e.user_id: e for e in session.scalars(select(Event))}
    assert set(stored) == set(SQL_IDS)
    assert all(e.event_id == e.user_id == e.item_id == e.text for e in stored.values())
    assert {"event", "item", "user_profile", "model_checkpoint"} <= set(
        inspect(db.engine).get_table_names()
    )
    for sql in SQL_IDS:
        answer = client.get(f"/v1/users/{quote(sql, safe='')}/cluster")
        assert answer.status_code == 200 and answer.json()["user_id"] == sql


def test_a_million_events_is_refused_quickly_and_stores_nothing(client, db):
    one = b'{"user_id":"u","type":"view","text":"t"}'
    big = b'{"events": [' + b",".join([one] * 1_000_000) + b"]}"  # ~40 MB
    assert_problem(post_raw(client, big), 413)
    small = b'{"events": [' + b",".join([b"{}"] * 1_000_000) + b"]}"  # ~3 MB, under the cap
    body = assert_problem(post_raw(client, small), 422)
    assert "at most" in body["errors"][0]["message"]
    assert len(json.dumps(body)) < 10_000  # one error, not a million
    assert stored_events(db) == 0


def test_with_the_database_down_errors_are_still_problems(make_client):
    client = make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    event = {"user_id": "u", "type": "view", "text": "t"}
    for response in (
        client.get("/readyz"),
        client.post("/v1/events", json={"events": [event]}),
        client.get("/v1/users/u/cluster"),
        client.get("/v1/stats"),
    ):
        assert_problem(response, 503)
    assert client.get("/metrics").status_code == 200


def test_openapi_refs_resolve_and_errors_are_documented_as_problems():
    document = create_app(load_settings(api_keys={})).openapi()
    text = json.dumps(document)
    for name in {ref.split('"')[0] for ref in text.split('"#/components/schemas/')[1:]}:
        assert name in document["components"]["schemas"], f"dangling $ref to {name}"
    events = document["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "401", "403", "413", "422", "503"} <= set(events)
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"]
