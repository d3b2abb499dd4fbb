"""API keys and scopes."""

from __future__ import annotations

import logging

import pytest

INGEST = "ingest-key-0123456789"
READER = "reader-key-0123456789"
ADMIN = "admin-key-0123456789ab"
EVENTS = {"events": [{"user_id": "u", "type": "view", "text": "t"}]}


@pytest.fixture
def secured(make_client):
    return make_client(api_keys=f"{INGEST}:ingest,{READER}:read,{ADMIN}:admin")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_missing_key_is_401(secured):
    response = secured.post("/v1/events", json=EVENTS)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(secured):
    assert secured.post("/v1/events", json=EVENTS, headers=bearer("x" * 20)).status_code == 401
    assert (
        secured.post("/v1/events", json=EVENTS, headers={"Authorization": INGEST}).status_code
        == 401
    )


def test_wrong_scope_is_403(secured):
    response = secured.post("/v1/events", json=EVENTS, headers=bearer(READER))
    assert response.status_code == 403
    assert "ingest" in response.json()["detail"]
    assert secured.put("/v1/items/a", json={"text": "t"}, headers=bearer(READER)).status_code == 403


def test_right_scope_passes_and_admin_has_all(secured):
    assert secured.post("/v1/events", json=EVENTS, headers=bearer(INGEST)).status_code == 202
    assert secured.post("/v1/events", json=EVENTS, headers=bearer(ADMIN)).status_code == 202
    assert secured.put("/v1/items/a", json={"text": "t"}, headers=bearer(INGEST)).status_code == 200


def test_probes_need_no_key(secured):
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_keys_are_never_logged(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(api_keys=f"{INGEST}:ingest")
    client.post("/v1/events", json=EVENTS, headers=bearer(INGEST))
    client.post("/v1/events", json=EVENTS, headers=bearer("bad-key-that-is-long-enough"))
    assert INGEST not in caplog.text
    assert "bad-key-that-is-long-enough" not in caplog.text


def test_open_mode_warns_loudly(make_client, caplog):
    caplog.set_level(logging.WARNING)
    make_client(api_keys={})
    assert "NO API KEYS CONFIGURED" in caplog.text
