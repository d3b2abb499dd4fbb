"""Recommendations: items the user has not interacted with, ranked from what members of the
user's cluster(s) engaged with; a cluster's own ranking."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.clustering.interests import blend
from app.config import Settings
from app.errors import NotFound
from app.event import repository as event_repository
from app.model.cache import ModelCache
from app.recommend import repository as recommend_repository
from app.recommend.interests import cluster_keywords, user_interests
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


def recommend(
    session: Session, *, user_id: str, limit: int, models: ModelCache, settings: Settings
) -> Recommendations:
    """Up to `limit` unseen items; a pending user gets the global ranking, saying why."""
    cluster = user_service.current_cluster(
        session, user_id=user_id, models=models, first_fit_users=settings.first_fit_users
    )
    answer = Recommendations(
        user_id=user_id, personal=False, reason=None, model_version=None, items=[]
    )
    version = recommend_repository.latest_version(session)
    if version is None:
        answer.reason = NO_RANKINGS
        return answer
    answer.model_version = version
    # cluster id -> (share, the interest it serves, if any)
    shares: dict[int, tuple[float, int | None]] = {}
    if cluster.status == "assigned" and cluster.cluster_id is not None:
        answer.personal = True
        if settings.recommend_by_interests:
            interests = user_interests(session, user_id=user_id, models=models, settings=settings)
            for index, interest in enumerate(interests.interests):
                if interest.cluster_id is not None:
                    share, first = shares.get(interest.cluster_id, (0.0, index))
                    shares[interest.cluster_id] = (share + interest.share, first)
        if not shares:
            shares = {cluster.cluster_id: (1.0, None)}
    else:
        answer.reason = f"the global ranking: the user is pending ({cluster.reason})"
    seen = event_repository.user_items(session, user_id)
    depth = min(limit + len(seen), settings.recommend_items_per_cluster)
    ranked = recommend_repository.rankings(
        session, version=version, cluster_ids=[*shares, GLOBAL], depth=depth
    )
    picked = blend(
        {c: ranked[c] for c in shares}, {c: s for c, (s, _) in shares.items()}, seen=seen
    )[:limit]
    keywords = cluster_keywords(session) if picked else {}
    for item, score, source in picked:
        answer.items.append(
            Recommendation(item_id=item, score=score, reason=_reason(source, shares, keywords))
        )
    if len(answer.items) < limit:  # a small cluster: fill up from the global ranking
        taken = seen | {r.item_id for r in answer.items}
        for item, score, _ in blend({GLOBAL: ranked[GLOBAL]}, {GLOBAL: 1.0}, seen=taken):
            if len(answer.items) == limit:
                break
            reason = Reason(
                kind="global", cluster_id=None, keywords=[], interest=None, text=GLOBAL_TEXT
            )
            answer.items.append(Recommendation(item_id=item, score=score, reason=reason))
    return answer


def _reason(
    cluster: int, shares: dict[int, tuple[float, int | None]], keywords: dict[int, list[str]]
) -> Reason:
    words = keywords.get(cluster, [])
    label = f" ({', '.join(words[:4])})" if words else ""
    interest = shares[cluster][1]
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
    if not ranked:
        raise NotFound(f"cluster {cluster_id} has no ranking in model version {version}")
    return ClusterItems(
        cluster_id=cluster_id,
        keywords=cluster_keywords(session).get(cluster_id, []),
        model_version=version,
        items=[RankedItem(item_id=i, score=s) for i, s in ranked],
    )
