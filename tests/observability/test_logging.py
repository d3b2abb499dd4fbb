"""Structured logs and request ids."""

from __future__ import annotations

import json
import logging
import re

from app.observability.logging import MAX_REQUEST_ID, clean_request_id, configure_logging

KEY = "ingest-key-0123456789-secret"
WRONG = "wrong-key-long-enough"
EVENTS = {"events": [{"user_id": "u", "type": "view", "text": "t"}]}


def json_lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_request_id(make_client, log_stream):
    configure_logging("INFO", "json", stream=log_stream)
    client = make_client()
    response = client.post("/v1/events", json=EVENTS, headers={"X-Request-ID": "req-abc.123"})
    assert response.status_code == 202
    assert response.headers["x-request-id"] == "req-abc.123"
    lines = json_lines(log_stream)
    access = [e for e in lines if e["logger"] == "app.access"]
    assert access, lines
    entry = access[-1]
    assert entry["request_id"] == "req-abc.123"
    assert entry["route"] == "/v1/events" and entry["status"] == 202 and entry["method"] == "POST"
    assert {"time", "level", "logger", "message"} <= set(entry)
    assert entry["level"] == "INFO"
    # Records outside any request (start-up) have no request id.
    startup = [e for e in lines if "NO API KEYS" in e["message"]]
    assert startup and "request_id" not in startup[0]


def test_json_logs_never_contain_keys(make_client, log_stream):
    configure_logging("DEBUG", "json", stream=log_stream)
    client = make_client(api_keys=f"{KEY}:ingest")
    client.post("/v1/events", json=EVENTS, headers={"Authorization": f"Bearer {KEY}"})
    client.post(
        "/v1/events", json=EVENTS, headers={"Authorization": "Bearer wrong-key-long-enough"}
    )
    client.get("/v1/stats", headers={"Authorization": f"Bearer {KEY}"})  # 403
    output = log_stream.getvalue()
    assert output  # something was logged, so the check below means something
    assert KEY not in output and WRONG not in output
    json_lines(log_stream)  # every line is one JSON object


def test_request_id_is_generated_when_missing(client):
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_hostile_request_ids_are_sanitised(client):
    response = client.get("/healthz", headers={"X-Request-ID": 'a"b\tc}{' + "x" * 500})
    rid = response.headers["x-request-id"]
    assert rid.startswith("abc") and len(rid) == MAX_REQUEST_ID
    assert re.fullmatch(r"[A-Za-z0-9._:-]+", rid)
    assert clean_request_id("\r\n") != ""  # nothing usable left: a fresh id


def test_text_format_is_readable(make_client, log_stream):
    configure_logging("INFO", "text", stream=log_stream)
    make_client().get("/healthz", headers={"X-Request-ID": "trace-7"})
    line = next(x for x in log_stream.getvalue().splitlines() if "app.access" in x)
    assert "INFO app.access [trace-7] GET /healthz 200" in line
    assert not line.startswith("{")


def test_exceptions_are_one_json_line(log_stream):
    configure_logging("INFO", "json", stream=log_stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("app.test").exception("failed\nover two lines")
    (entry,) = json_lines(log_stream)
    assert entry["message"] == "failed\nover two lines"
    assert "ValueError: boom" in entry["exception"]


def test_error_logs_inside_a_request_carry_its_id(make_client, log_stream):
    configure_logging("INFO", "json", stream=log_stream)
    client = make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    response = client.get("/v1/stats", headers={"X-Request-ID": "db-down-1"})
    assert response.status_code == 503
    errors = [e for e in json_lines(log_stream) if e["level"] == "ERROR"]
    assert errors and all(e.get("request_id") == "db-down-1" for e in errors)
