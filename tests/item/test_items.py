"""Item catalogue upserts."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import Item


def texts(db) -> dict[str, str]:
    with db.read() as session:
        return dict(session.execute(select(Item.item_id, Item.text)).tuples().all())


def test_put_creates_then_replaces(client, db):
    assert client.put("/v1/items/m1", json={"text": "Alien (1979)"}).json() == {"upserted": 1}
    assert client.put("/v1/items/m1", json={"text": "Aliens (1986)"}).status_code == 200
    assert texts(db) == {"m1": "Aliens (1986)"}


def test_post_upserts_many_last_wins(client, db):
    client.put("/v1/items/a", json={"text": "old"})
    items = [
        {"item_id": "a", "text": "new a"},
        {"item_id": "b", "text": "b1"},
        {"item_id": "b", "text": "b2"},
    ]
    assert client.post("/v1/items", json={"items": items}).status_code == 200
    assert texts(db) == {"a": "new a", "b": "b2"}


def test_invalid_items_store_nothing(client, db):
    items = [
        {"item_id": "a", "text": "ok"},
        {"item_id": "", "text": "x"},
        {"item_id": "c", "text": ""},
    ]
    response = client.post("/v1/items", json={"items": items})
    assert response.status_code == 422
    assert sorted({e["index"] for e in response.json()["errors"]}) == [1, 2]
    assert texts(db) == {}


def test_put_validates_text_and_id(client, db):
    assert client.put("/v1/items/a", json={"text": ""}).status_code == 422
    assert client.put("/v1/items/a", json={"text": "x" * 4001}).status_code == 422
    assert client.put(f"/v1/items/{'i' * 129}", json={"text": "ok"}).status_code == 422
    assert texts(db) == {}
