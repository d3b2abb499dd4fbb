"""The strict edge (issue 9): what a hostile or careless client sends is refused, clearly, and
nothing is stored. Each case here was accepted (or answered oddly) before."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import func, select

from app.config import MAX_WEIGHT, SettingsError, load_settings
from app.db.models import Event, Item
from app.db.session import Database
from app.main import create_app
from app.server import LoggedOnce, ProblemHttpToolsProtocol

EVENT = {"user_id": "u", "type": "view", "text": "t"}


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        events = session.scalar(select(func.count()).select_from(Event)) or 0
        items = session.scalar(select(func.count()).select_from(Item)) or 0
    return events, items


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_not_declared_as_json_is_refused_with_415(client, db, content_type):
    body = b'{"events": [{"user_id": "u", "type": "view", "text": "t"}]}'
    headers = {"content-type": content_type} if content_type else {}
    # httpx adds no Content-Type for raw bytes: exactly what a bare `curl --data-binary` sends.
    assert_problem(client.post("/v1/events", content=body, headers=headers), 415)
    item = b'{"text": "t"}'
    assert_problem(client.put("/v1/items/i", content=item, headers=headers), 415)
    items = b'{"items": [{"item_id": "i", "text": "t"}]}'
    assert_problem(client.post("/v1/items", content=items, headers=headers), 415)
    assert counts(db) == (0, 0)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_media_types_are_accepted(client, db, content_type):
    body = b'{"events": [{"user_id": "u", "type": "view", "text": "t"}]}'
    response = client.post("/v1/events", content=body, headers={"content-type": content_type})
    assert response.status_code == 202
    assert counts(db) == (1, 0)


@pytest.mark.parametrize("timestamp", ["1700000000", "1700000000000", "1.5e9", "0", " 1700000000"])
def test_epoch_strings_are_refused_like_epoch_numbers(client, db, timestamp):
    event = EVENT | {"timestamp": timestamp}
    body = assert_problem(client.post("/v1/events", json={"events": [event]}), 422)
    assert [e["field"] for e in body["errors"]] == ["events.timestamp"]
    assert counts(db) == (0, 0)


def test_iso_timestamps_still_work(client, db):
    for when in ("2026-01-02T03:04:05+02:00", "2026-01-02 03:04:05Z", "2026-01-02t03:04:05.5Z"):
        response = client.post("/v1/events", json={"events": [EVENT | {"timestamp": when}]})
        assert response.status_code == 202, (when, response.text)


def test_invalid_utf8_in_a_path_is_a_400(client, db):
    assert_problem(client.put("/v1/items/%FF", json={"text": "t"}), 400)
    assert_problem(client.put("/v1/items/a%C3%28", json={"text": "t"}), 400)
    for path in ("/v1/users/%FF/cluster", "/v1/users/%FE%FF/cluster/history"):
        assert_problem(client.get(path), 400)
    assert_problem(client.delete("/v1/users/%FF"), 400)
    assert counts(db) == (0, 0)
    # Percent-encoded UTF-8 is fine: the id is what was meant.
    assert client.put("/v1/items/caf%C3%A9", json={"text": "t"}).status_code == 200
    with db.read() as session:
        assert session.scalar(select(Item.item_id)) == "café"


@pytest.mark.parametrize("bad_id", ["a/b", "/", "u/", ".", ".."])
def test_ids_that_cannot_be_a_path_segment_are_refused_at_ingest(client, db, bad_id):
    for field in ("user_id", "item_id"):
        body = assert_problem(
            client.post("/v1/events", json={"events": [EVENT | {field: bad_id}]}), 422
        )
        assert [e["field"] for e in body["errors"]] == [f"events.{field}"]
    items = {"items": [{"item_id": bad_id, "text": "t"}]}
    assert_problem(client.post("/v1/items", json=items), 422)
    assert counts(db) == (0, 0)


def test_ids_with_dots_and_odd_characters_are_usable_everywhere(client, db):
    for user_id in ("...", ".hidden", "a.b", "jane.doe@example.com", "50% off?#x"):
        event = EVENT | {"user_id": user_id, "item_id": user_id}
        assert client.post("/v1/events", json={"events": [event]}).status_code == 202
        encoded = "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in user_id)
        assert client.get(f"/v1/users/{encoded}/cluster").json()["user_id"] == user_id
        assert client.put(f"/v1/items/{encoded}", json={"text": "x"}).status_code == 200
        assert client.delete(f"/v1/users/{encoded}").status_code == 200


def test_api_paths_never_redirect(client):
    client.post("/v1/events", json={"events": [EVENT]})
    for method, path in (
        ("GET", "/v1/users/u/cluster/"),
        ("GET", "/v1/stats/"),
        ("DELETE", "/v1/users/u/"),
        ("POST", "/v1/events/"),
    ):
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code in (404, 405), (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("weight", [1.7e308, -1e154, MAX_WEIGHT * 1.001, -1e7])
def test_weights_beyond_the_documented_bound_are_refused(client, db, weight):
    body = assert_problem(
        client.post("/v1/events", json={"events": [EVENT | {"weight": weight}]}), 422
    )
    assert [e["field"] for e in body["errors"]] == ["events.weight"]
    assert counts(db) == (0, 0)


def test_weights_at_the_bound_are_accepted(client, db):
    events = [EVENT | {"weight": MAX_WEIGHT}, EVENT | {"weight": -MAX_WEIGHT}]
    assert client.post("/v1/events", json={"events": events}).json()["accepted"] == 2


def test_type_weights_in_settings_are_bounded_too():
    with pytest.raises(SettingsError, match="APP_EVENT_WEIGHTS"):
        load_settings(event_weights={"view": 1e300})


def test_openapi_lists_the_configured_event_types_and_the_weight_bound():
    app = create_app(load_settings(event_weights={"view": 1.0, "rate": 2.5}, worker="off"))
    document = app.openapi()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    event = body["schema"]["properties"]["events"]["items"]["properties"]
    assert event["type"]["enum"] == ["rate", "view"]
    weight = next(s for s in event["weight"]["anyOf"] if s.get("type") == "number")
    assert (weight["minimum"], weight["maximum"]) == (-MAX_WEIGHT, MAX_WEIGHT)
    assert "415" in document["paths"]["/v1/events"]["post"]["responses"]


# uvicorn's own answers ------------------------------------------------------------------------


@pytest.fixture
def live_server(make_settings) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app under a real uvicorn, as `python -m app serve` runs it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(make_settings())

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    config = uvicorn.Config(
        LoggedOnce(app),
        host="127.0.0.1",
        port=port,
        http=ProblemHttpToolsProtocol,
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
        b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ],
)
def test_requests_uvicorn_cannot_parse_get_problem_json(live_server, request_bytes):
    answer = raw_request(live_server, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/problem+json" in head.lower()
    assert b'"status": 400' in body


def test_an_unexpected_error_is_one_problem_and_one_log_record(live_server, caplog):
    with caplog.at_level(logging.ERROR):
        answer = raw_request(live_server, b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500") and b"application/problem+json" in head
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["app.errors"], [r.getMessage() for r in errors]
    assert "/broken" in errors[0].getMessage()  # the route template; no path with ids
