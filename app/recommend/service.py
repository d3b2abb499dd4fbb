"""Recommendations: items the user has not interacted with, ranked from what members of the
user's cluster(s) engaged with; a cluster's own ranking."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.clustering.interests import blend
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.errors import NotFound
from app.event import repository as event_repository
from app.model.cache import ModelCache
from app.profile import repository as profile_repository
from app.recommend import repository as recommend_repository
from app.recommend.interests import cluster_keywords, interests_and_directions
from app.recommend.rankings import GLOBAL
from app.recommend.schemas import (
    ClusterItems,
    RankedItem,
    Reason,
    Recommendation,
    Recommendations,
)
from app.user import service as user_service

NO_RANKINGS = "no rankings yet: the worker computes them after the first model is evaluated"
GLOBAL_TEXT = "popular with everyone"
CANDIDATES = 300  # items read per cluster (seen ones included) for the closeness re-ranking


def recommend(
    session: Session, *, user_id: str, limit: int, models: ModelCache, settings: Settings
) -> Recommendations:
    """Up to `limit` unseen items; a pending user gets the global ranking, saying why."""
    cluster = user_service.current_cluster(
        session.connection(),
        user_id=user_id,
        models=models,
        first_fit_users=settings.first_fit_users,
    )
    answer = Recommendations(
        user_id=user_id, personal=False, reason=None, model_version=None, items=[]
    )
    version = recommend_repository.latest_version(session)
    if version is None:
        answer.reason = NO_RANKINGS
        return answer
    answer.model_version = version
    served: list[tuple[int, float, np.ndarray | None]] = []  # cluster, share, direction
    keywords: dict[int, list[str]] = {}
    interest_of: list[int | None] = []  # the interest each entry of `served` serves
    if cluster.status == "assigned" and cluster.cluster_id is not None:
        answer.personal = True
        if settings.recommend_by_interests:
            interests, directions = interests_and_directions(
                session,
                user_id=user_id,
                models=models,
                settings=settings,
                model_version=cluster.model_version,
            )
            keywords = {
                i.cluster_id: i.keywords for i in interests.interests if i.cluster_id is not None
            }
            for index, (interest, direction) in enumerate(
                zip(interests.interests, directions, strict=True)
            ):
                if interest.cluster_id is not None:
                    served.append((interest.cluster_id, interest.share, direction))
                    interest_of.append(index)
        if not served:
            served, interest_of = [(cluster.cluster_id, 1.0, _direction(session, user_id))], [None]
    else:
        answer.reason = f"the global ranking: the user is pending ({cluster.reason})"
    seen = event_repository.user_items(session, user_id)
    depth = min(settings.recommend_items_per_cluster, max(CANDIDATES, limit + len(seen)))
    ranked = recommend_repository.rankings(
        session, version=version, cluster_ids=sorted({c for c, _, _ in served}), depth=depth
    )
    picked = blend(ranked, served, seen=seen)[:limit]
    if picked and not keywords:
        keywords = cluster_keywords(session)
    for item, score, source in picked:
        reason = _reason(served[source][0], interest_of[source], keywords)
        answer.items.append(Recommendation(item_id=item, score=score, reason=reason))
    if len(answer.items) < limit:  # a small cluster: fill up from the global ranking
        taken = seen | {r.item_id for r in answer.items}
        ranked = recommend_repository.rankings(
            session, version=version, cluster_ids=[GLOBAL], depth=limit + len(taken)
        )
        for item, score, _ in blend(ranked, [(GLOBAL, 1.0, None)], seen=taken):
            if len(answer.items) == limit:
                break
            reason = Reason(
                kind="global", cluster_id=None, keywords=[], interest=None, text=GLOBAL_TEXT
            )
            answer.items.append(Recommendation(item_id=item, score=score, reason=reason))
    return answer


def _direction(session: Session, user_id: str) -> np.ndarray | None:
    """The user's profile vector (unit), or None."""
    profile = profile_repository.get(session, user_id)
    if profile is None:
        return None
    rows, _ = unit_rows([profile.vector_sum], len(profile.vector_sum) // 8)
    return rows[0] if len(rows) else None


def _reason(cluster: int, interest: int | None, keywords: dict[int, list[str]]) -> Reason:
    words = keywords.get(cluster, [])
    label = f" ({', '.join(words[:4])})" if words else ""
    if interest is None:
        text = f"popular in your cluster {cluster}{label}"
        return Reason(kind="cluster", cluster_id=cluster, keywords=words, interest=None, text=text)
    text = f"for your interest {interest}: popular in cluster {cluster}{label}"
    return Reason(kind="interest", cluster_id=cluster, keywords=words, interest=interest, text=text)


def cluster_items(session: Session, *, cluster_id: int, limit: int) -> ClusterItems:
    """The cluster's ranking in the newest rankings computed."""
    version = recommend_repository.latest_version(session)
    if version is None:
        raise NotFound(NO_RANKINGS)
    ranked = recommend_repository.rankings(
        session, version=version, cluster_ids=[cluster_id], depth=limit
    )[cluster_id]
    if not ranked.item_ids:
        raise NotFound(f"cluster {cluster_id} has no ranking in model version {version}")
    return ClusterItems(
        cluster_id=cluster_id,
        keywords=cluster_keywords(session).get(cluster_id, []),
        model_version=version,
        items=[
            RankedItem(item_id=item, score=score)
            for item, score in zip(ranked.item_ids, ranked.scores.tolist(), strict=True)
        ],
    )
