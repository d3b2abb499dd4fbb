"""Cluster-popularity recommendations and their recall@k on each user's held-out likes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from benchmarks.movielens import Rating

K = 20


def like_counts(train: Iterable[Rating], cluster_of: Mapping[str, int] | None = None):  # type: ignore[no-untyped-def]
    """Training likes per movie, overall (cluster_of=None) or per cluster of the liker."""
    if cluster_of is None:
        return Counter(r.movie for r in train if r.liked)
    per: dict[int, Counter[str]] = {}
    for r in train:
        c = cluster_of.get(r.user)
        if r.liked and c is not None:
            per.setdefault(c, Counter())[r.movie] += 1
    return per


def ranking(counts: Counter[str], overall: Counter[str]) -> list[str]:
    """Most-liked first; ties by overall likes, then movie id, so the order is deterministic."""
    return sorted(counts, key=lambda m: (-counts[m], -overall[m], int(m)))


def top_unseen(ranked: list[str], seen: set[str], k: int = K) -> list[str]:
    out = []
    for m in ranked:
        if m not in seen:
            out.append(m)
            if len(out) == k:
                break
    return out


def recall_at_k(
    train: list[Rating],
    seen: Mapping[str, set[str]],
    relevant: Mapping[str, set[str]],
    cluster_of: Mapping[str, int] | None,
    k: int = K,
) -> dict[str, float]:
    """Mean over users with held-out likes of |top-k ∩ liked| / |liked|. With cluster_of=None
    (or for a user without a cluster) the ranking is global popularity."""
    overall = like_counts(train)
    global_rank = ranking(overall, overall)
    per_cluster = (
        {c: ranking(cnt, overall) for c, cnt in like_counts(train, cluster_of).items()}
        if cluster_of is not None
        else {}
    )
    per_user: dict[str, float] = {}
    fallback = 0
    for user, liked in relevant.items():
        if not liked:
            continue
        cluster = cluster_of.get(user) if cluster_of is not None else None
        if cluster_of is not None and cluster is None:
            fallback += 1
        ranked = per_cluster.get(cluster, global_rank) if cluster is not None else global_rank
        recs = top_unseen(ranked, seen.get(user, set()), k)
        if len(recs) < k:  # a tiny cluster: fill up from global popularity
            recs += top_unseen(global_rank, seen.get(user, set()) | set(recs), k - len(recs))
        per_user[user] = len(liked.intersection(recs)) / len(liked)
    users = len(per_user)
    recall = sum(per_user.values()) / users if users else 0.0
    return {"recall": recall, "users": users, "no_cluster": fallback, "per_user": per_user}


def lift_interval(
    method: dict[str, float], baseline: dict[str, float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval (over users) of mean recall(method) / mean recall(baseline)."""
    users = sorted(baseline)
    a = np.array([method[u] for u in users])
    b = np.array([baseline[u] for u in users])
    idx = np.random.default_rng(seed).integers(0, len(users), size=(resamples, len(users)))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def served_recall(client: Any, relevant: Mapping[str, set[str]], k: int = K) -> dict[str, Any]:
    """recall@k of GET /v1/users/{id}/recommendations?limit=k, per user with held-out likes."""
    per_user: dict[str, float] = {}
    personal = 0
    for user, liked in relevant.items():
        if not liked:
            continue
        answer = client.recommendations(user, k)
        personal += answer["personal"]
        items = {r["item_id"] for r in answer["items"]}
        per_user[user] = len(liked & items) / len(liked)
    users = len(per_user)
    recall = sum(per_user.values()) / users if users else 0.0
    return {"recall": recall, "users": users, "personal": personal, "per_user": per_user}
