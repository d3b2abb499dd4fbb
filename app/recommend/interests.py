"""A user's several interests, from their own event vectors (cached in the embedding table)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.clustering.interests import decayed_weights, find_interests
from app.config import Settings
from app.embedding import repository as embedding_repository
from app.embedding.embedder import text_hash
from app.errors import NotFound
from app.event import repository as event_repository
from app.model import repository as model_repository
from app.model.cache import CurrentModel, ModelCache
from app.profile import repository as profile_repository
from app.recommend.schemas import InterestInfo, Interests, RepresentativeItem

MAX_EVENTS = 500  # the user's newest events an answer looks at (bounded work per request)
ITEMS = 3  # representative items per interest


def user_interests(
    session: Session, *, user_id: str, models: ModelCache, settings: Settings
) -> Interests:
    """Up to `settings.interests` interests, most important first, each with its nearest
    cluster, that cluster's keywords and the user's own items nearest the interest."""
    return interests_and_directions(session, user_id=user_id, models=models, settings=settings)[0]


def interests_and_directions(
    session: Session,
    *,
    user_id: str,
    models: ModelCache,
    settings: Settings,
    model_version: int | None = None,
) -> tuple[Interests, list[np.ndarray]]:
    """The answer of `user_interests`, and each interest's unit vector (what recommendations
    measure items against); `model_version`: the latest, when the caller has read it."""
    profile = profile_repository.get(session, user_id)
    if profile is None and not event_repository.user_has_events(session, user_id):
        raise NotFound(f"no events for user {user_id!r}")
    model = models.get(
        session.connection(), model_version or model_repository.latest_version(session)
    )
    answer = Interests(
        user_id=user_id, model_version=model.version if model else None, interests=[]
    )
    if profile is None:
        return answer, []  # events not applied yet: no vectors to read
    events = event_repository.user_applied_events(session, user_id, limit=MAX_EVENTS)
    known = [e for e in events if e[5] is not None]
    keys = [text_hash(e[5]) for e in known if e[5] is not None]
    # The profile names the model (its space), not the backend that encoded the texts.
    vectors = embedding_repository.lookup_in_space(session, profile.model_id, sorted(set(keys)))
    rows = [(key, e) for key, e in zip(keys, known, strict=True) if key in vectors]
    if not rows:
        return answer, []
    weights = settings.event_weights
    coefficients = decayed_weights(
        np.array([e[4].timestamp() for _, e in rows]),
        np.array([weights.get(e[2], 0.0) if e[3] is None else e[3] for _, e in rows]),
        half_life_seconds=settings.profile_half_life_seconds,
    )
    found = find_interests(
        [key for key, _ in rows],
        np.stack([vectors[key] for key, _ in rows]),
        coefficients,
        max_interests=settings.interests,
    )
    # The smallest item id per text, so the same events always name the same item.
    items: dict[bytes, tuple[str | None, str]] = {}
    for key, e in sorted(rows, key=lambda r: (r[0], r[1][1] or "")):
        items.setdefault(key, (e[1], e[5] or ""))
    keywords = cluster_keywords(session)
    total = sum(i.importance for i in found) or 1.0
    for interest in found:
        cluster, distance = nearest_cluster(model, interest.vector)
        answer.interests.append(
            InterestInfo(
                importance=interest.importance,
                share=interest.importance / total,
                cluster_id=cluster,
                distance=distance,
                keywords=keywords.get(cluster, []) if cluster is not None else [],
                representative_items=[
                    RepresentativeItem(item_id=items[k][0], text=items[k][1])
                    for k in interest.keys[:ITEMS]
                ],
                events=len(interest.keys),
            )
        )
    return answer, [interest.vector for interest in found]


def nearest_cluster(
    model: CurrentModel | None, vector: np.ndarray
) -> tuple[int | None, float | None]:
    if model is None:
        return None, None
    distances = np.linalg.norm(model.centers - vector[None, :], axis=1)
    nearest = int(np.argmin(distances))
    return model.ids[nearest], float(distances[nearest])


_keywords: tuple[object, dict[int, list[str]]] = (None, {})  # a snapshot's mark, its labels


def cluster_keywords(session: Session) -> dict[int, list[str]]:
    """cluster id -> its label keywords, from the latest quality snapshot (its JSON read once
    per snapshot: a request reads only the newest snapshot's id and time)."""
    global _keywords
    mark = model_repository.latest_metrics_mark(session)
    if mark is None:
        return {}
    if _keywords[0] != mark:
        snapshot = model_repository.latest_metrics(session)
        if snapshot is None:
            return {}
        labels = {int(c["cluster_id"]): list(c.get("keywords", [])) for c in snapshot.clusters}
        _keywords = ((snapshot.id, snapshot.computed_at), labels)
    return _keywords[1]
