"""Test data and small drivers shared by the pipeline tests (the real model, no mocks)."""

from __future__ import annotations

from datetime import datetime

from app.config import Settings
from app.db.base import utcnow
from app.db.session import Database
from app.embedding.embedder import Embedder
from app.event.schemas import EventIn
from app.event.service import ingest
from app.model.trainer import Trainer, TrainResult
from app.profile.service import apply_pending

TOPICS = {
    "space": [
        "rocket launch to mars",
        "astronauts aboard the space station",
        "alien planet exploration",
        "telescope images of a distant galaxy",
        "nasa moon landing mission",
    ],
    "food": [
        "pasta recipe with fresh tomato",
        "baking sourdough bread at home",
        "italian cooking class",
        "chocolate cake dessert recipe",
        "grilled vegetables and olive oil",
    ],
    "sport": [
        "football match highlights",
        "tennis grand slam final",
        "marathon running training plan",
        "basketball playoffs game seven",
        "cycling tour mountain stage",
    ],
}


def drain(db: Database, embedder: Embedder, settings: Settings) -> int:
    """Run the profile stage until nothing is processable; returns events applied (events it
    quarantined are not counted)."""
    total = 0
    while (step := apply_pending(db, embedder, settings)).applied or step.quarantined:
        total += step.applied
    return total


def topic_events(users_per_topic: int, events_per_user: int, *, prefix: str = "") -> list[dict]:
    """Events with texts from each user's own topic (deterministic)."""
    events = []
    for topic, texts in TOPICS.items():
        for u in range(users_per_topic):
            for k in range(events_per_user):
                events.append(
                    {
                        "event_id": f"{prefix}{topic}-{u}-{k}",
                        "user_id": f"{prefix}{topic}-{u}",
                        "type": "like" if k % 2 else "view",
                        "text": texts[(u + k) % len(texts)],
                    }
                )
    return events


def post(db: Database, events: list[dict], *, now: datetime | None = None) -> None:
    """Ingest events through the service, as the API does."""
    with db.write() as session:
        ingest(session, events=[EventIn(**e) for e in events], now=now or utcnow())


def trainer_for(settings: Settings, embedder: Embedder) -> Trainer:
    return Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)


def step_settled(db: Database, trainer: Trainer) -> TrainResult:
    """One trainer step; when it started a consolidation in the background, that pass is
    waited for and committed by a second step (what the worker's next rounds do)."""
    result = trainer.step(db)
    job = trainer.consolidations.job
    if job is None:
        return result
    job.future.result(timeout=120)
    return trainer.step(db)


def topic_items() -> dict[str, str]:
    """One catalogue item per topic text: item `space-3` is TOPICS["space"][3]."""
    return {f"{topic}-{j}": text for topic, texts in TOPICS.items() for j, text in enumerate(texts)}


def item_events(users_per_topic: int, items_per_user: int, *, prefix: str = "") -> list[dict]:
    """Events naming items of each user's own topic: user u of a topic has items u .. u+n-1."""
    return [
        {
            "event_id": f"{prefix}{topic}-{u}-item-{k}",
            "user_id": f"{prefix}{topic}-{u}",
            "type": "like",
            "item_id": f"{topic}-{(u + k) % len(texts)}",
        }
        for topic, texts in TOPICS.items()
        for u in range(users_per_topic)
        for k in range(items_per_user)
    ]
