"""Recommendations, cluster rankings and interests through the API, on the real model."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.db.models import Embedding, Event
from app.model.evaluation import evaluate
from app.model.trainer import Trainer
from app.recommend import rankings
from tests.factories import TOPICS, drain, item_events, topic_items


@pytest.fixture
def settings(make_settings):
    return make_settings(clusters=3, min_users_first_fit=30, batch_size=64)


def trained(client, db, embedder, settings, *, users=12, items=3) -> Trainer:
    """Items, events on them, the profile stage drained, a model, and its rankings."""
    client.post(
        "/v1/items", json={"items": [{"item_id": i, "text": t} for i, t in topic_items().items()]}
    )
    client.post("/v1/events", json={"events": item_events(users, items)})
    drain(db, embedder, settings)
    trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
    trainer.restore(db)
    while trainer.step(db).rows:
        pass
    rankings.refresh(
        db, version=trainer.version, settings=settings, embedding_model=trainer.embedding_model
    )
    return trainer


def seen(user: str) -> set[str]:
    topic, u = user.rsplit("-", 1)
    return {f"{topic}-{(int(u) + k) % 5}" for k in range(3)}


@pytest.mark.parametrize("interests", [True, False])
def test_recommendations_are_unseen_items_of_the_users_own_taste(
    make_client, db, embedder, settings, interests
):
    client = make_client(clusters=3, recommend_by_interests=interests)
    trained(client, db, embedder, settings)
    for topic in TOPICS:
        for u in range(12):
            user = f"{topic}-{u}"
            answer = client.get(f"/v1/users/{user}/recommendations?limit=5").json()
            items = [r["item_id"] for r in answer["items"]]
            assert answer["personal"] and answer["reason"] is None
            assert not set(items) & seen(user), (user, items)  # nothing already seen
            # the two unseen items of the user's own topic come first
            assert set(items[:2]) == {f"{topic}-{j}" for j in range(5)} - seen(user)
            cluster = client.get(f"/v1/users/{user}/cluster").json()["cluster_id"]
            reason = answer["items"][0]["reason"]
            assert reason["cluster_id"] == cluster
            assert reason["kind"] == ("interest" if interests else "cluster")
            assert str(cluster) in reason["text"]
            # the rest of the limit is filled from the global ranking, still unseen
            assert len(items) == 5 and len(set(items)) == 5


def test_a_pending_user_gets_the_global_ranking_saying_why(client, db, embedder, settings):
    trained(client, db, embedder, settings)
    client.post(
        "/v1/events", json={"events": [{"user_id": "new", "type": "like", "item_id": "food-0"}]}
    )
    answer = client.get("/v1/users/new/recommendations").json()
    assert not answer["personal"] and "pending" in answer["reason"]
    items = [r["item_id"] for r in answer["items"]]
    assert items and "food-0" not in items
    assert {r["reason"]["kind"] for r in answer["items"]} == {"global"}
    assert client.get("/v1/users/nobody/recommendations").status_code == 404
    assert client.get("/v1/users/nobody/interests").status_code == 404


def test_limits_are_validated(client):
    for limit in (0, 101, "x"):
        response = client.get(f"/v1/users/u/recommendations?limit={limit}")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"


def test_a_clusters_ranking_lists_what_its_members_engaged_with(client, db, embedder, settings):
    assert client.get("/v1/clusters/0/items").status_code == 404  # no rankings yet
    trained(client, db, embedder, settings)
    cluster = client.get("/v1/users/sport-0/cluster").json()["cluster_id"]
    answer = client.get(f"/v1/clusters/{cluster}/items?limit=10").json()
    assert {i["item_id"] for i in answer["items"]} == {f"sport-{j}" for j in range(5)}
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True) and answer["model_version"] >= 1
    assert client.get("/v1/clusters/999/items").status_code == 404
    assert answer["keywords"] == []  # no quality snapshot yet
    trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
    trainer.restore(db)
    evaluate(db, trainer.model, version=trainer.version, settings=settings,
             embedding_model=embedder.model_id, ids=trainer.ids)  # fmt: skip
    labels = {c["cluster_id"]: c["keywords"] for c in client.get("/v1/clusters").json()["clusters"]}
    assert labels[cluster]
    assert client.get(f"/v1/clusters/{cluster}/items").json()["keywords"] == labels[cluster]
    reason = client.get("/v1/users/sport-0/recommendations").json()["items"][0]["reason"]
    assert reason["cluster_id"] == cluster and reason["keywords"] == labels[cluster]
    assert labels[cluster][0] in reason["text"]


def test_interests_of_a_user_with_two_tastes(client, db, embedder, settings):
    trained(client, db, embedder, settings)
    # two tight tastes: variations of one text each (the Ward cut separates them)
    mars = {f"mars-{j}": f"rocket launch to mars, mission {j}" for j in range(2)}
    pasta = {f"pasta-{j}": f"pasta recipe with fresh tomato, variation {j}" for j in range(3)}
    items = [{"item_id": i, "text": t} for i, t in (mars | pasta).items()]
    client.post("/v1/items", json={"items": items})
    events = [
        {
            "user_id": "both",
            "type": "like",
            "item_id": i,
            "timestamp": f"2026-11-0{n + 1}T00:00:00Z",
        }
        for n, i in enumerate(mars)
    ] + [
        {
            "user_id": "both",
            "type": "purchase",
            "item_id": i,
            "timestamp": f"2026-11-2{n}T00:00:00Z",
        }
        for n, i in enumerate(pasta)
    ]
    client.post("/v1/events", json={"events": events})
    drain(db, embedder, settings)
    answer = client.get("/v1/users/both/interests").json()
    interests = answer["interests"]
    assert len(interests) == 2, interests
    food, space = interests  # food: more, heavier and newer events
    assert {i["item_id"] for i in food["representative_items"]} == set(pasta)
    assert {i["item_id"] for i in space["representative_items"]} == set(mars)
    assert food["importance"] > space["importance"] > 0
    assert abs(food["share"] + space["share"] - 1) < 1e-9
    cluster_of = {
        t: client.get(f"/v1/users/{t}-0/cluster").json()["cluster_id"] for t in ("food", "space")
    }
    assert (food["cluster_id"], space["cluster_id"]) == (cluster_of["food"], cluster_of["space"])
    # recommendations serve both interests, each item saying which
    recommended = client.get("/v1/users/both/recommendations?limit=10").json()["items"]
    served = {r["reason"]["interest"] for r in recommended if r["reason"]["kind"] == "interest"}
    assert served == {0, 1}
    assert not {r["item_id"] for r in recommended} & (set(mars) | set(pasta))


def test_interests_do_not_depend_on_the_order_events_arrived_in(client, db, embedder, settings):
    trained(client, db, embedder, settings)
    events = [
        {"type": kind, "item_id": item, "timestamp": f"2026-11-{day:02d}T00:00:00Z"}
        for kind, item, day in (
            ("like", "space-0", 1),
            ("view", "space-3", 5),
            ("purchase", "food-1", 9),
            ("like", "sport-2", 12),
            ("dislike", "food-4", 15),
            ("like", "space-0", 20),
        )
    ]
    client.post("/v1/events", json={"events": [{**e, "user_id": "forward"} for e in events]})
    drain(db, embedder, settings)
    for e in reversed(events):  # one request per event, newest first
        client.post("/v1/events", json={"events": [{**e, "user_id": "backward"}]})
        drain(db, embedder, settings)
    forward = client.get("/v1/users/forward/interests").json()
    backward = client.get("/v1/users/backward/interests").json()
    assert forward["interests"] and forward["interests"] == backward["interests"]


def test_interests_read_the_vectors_of_whichever_backend_encoded_them(
    client, db, embedder, settings
):
    """The API has no embedder: a profile names the model (its space), the cache rows name the
    backend too (`model@openvino-bf16`); interests must find them either way."""
    trained(client, db, embedder, settings)
    user = "space-1"
    before = client.get(f"/v1/users/{user}/interests").json()["interests"]
    assert before
    with db.write() as session:  # as if a worker on another backend had encoded every text
        session.execute(
            update(Embedding)
            .where(Embedding.model_id == embedder.model_id)
            .values(model_id=embedder.model_id + "@openvino-bf16")
        )
    assert client.get(f"/v1/users/{user}/interests").json()["interests"] == before


def test_a_ranking_weights_each_members_events_as_their_profile_does(
    client, db, embedder, settings
):
    """score(cluster, item) = sum over members' events on the item of w(type) *
    2^(-(t_u - t)/H), t_u the member's own newest event (the rankings stream the events and
    read each user's newest time beforehand)."""
    trainer = trained(client, db, embedder, settings)
    cluster = client.get("/v1/users/sport-0/cluster").json()["cluster_id"]
    # two new sport fans whose newest events lie days apart (everyone else's newest is now)
    for user, (first, last) in {"fan-a": (1, 9), "fan-b": (3, 4)}.items():
        client.post("/v1/events", json={"events": [
            {"user_id": user, "type": kind, "item_id": item,
             "timestamp": f"2026-11-{day:02d}T00:00:00Z"}
            for kind, item, day in (("like", "sport-4", first), ("view", "sport-4", last),
                                    ("like", "sport-0", last), ("like", "sport-1", last))
        ]})  # fmt: skip
    drain(db, embedder, settings)
    while trainer.step(db).rows:
        pass
    rankings.refresh(db, version=trainer.version, settings=settings,
                     embedding_model=trainer.embedding_model)  # fmt: skip
    members = [
        u
        for u in [f"sport-{j}" for j in range(12)] + ["fan-a", "fan-b"]
        if client.get(f"/v1/users/{u}/cluster").json()["cluster_id"] == cluster
    ]
    assert {"fan-a", "fan-b"} <= set(members)
    with db.read() as session:
        rows = session.execute(
            select(Event.user_id, Event.item_id, Event.type, Event.occurred_at).where(
                Event.user_id.in_(members)
            )
        ).all()
    newest = {u: max(r.occurred_at for r in rows if r.user_id == u) for u in members}
    w, h = settings.event_weights, settings.profile_half_life_seconds
    expected = sum(
        w[r.type] * 2.0 ** (-(newest[r.user_id] - r.occurred_at).total_seconds() / h)
        for r in rows
        if r.item_id == "sport-4"
    )
    items = client.get(f"/v1/clusters/{cluster}/items?limit=100").json()["items"]
    stored = next(i["score"] for i in items if i["item_id"] == "sport-4")
    assert stored == pytest.approx(expected, rel=1e-9)
