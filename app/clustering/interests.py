"""Several interests per user (after Pinterest's PinnerSage): Ward clustering of the user's own
event vectors, each interest's importance the time-decayed weight of its events. Pure numpy and
scipy, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

# Ward merge height above which two groups of events are different interests (unit vectors;
# for two single events the height is their distance; it grows with the groups' sizes).
# Sentence embeddings of short titles sit at 1.1-1.4 from each other even within a genre; on
# MovieLens 2.0 served recommendations best (1.45 gave most users 1-4 interests, and a lower
# recall: benchmarks/EVALUATION.md).
WARD_CUT = 2.0


@dataclass(frozen=True)
class Interest:
    keys: list[bytes]  # the member texts' keys, nearest the interest's direction first
    importance: float  # sum of the members' decayed weights
    vector: np.ndarray  # unit vector: the weighted mean direction of the members


def decayed_weights(
    times: np.ndarray, weights: np.ndarray, *, half_life_seconds: float
) -> np.ndarray:
    """w * 2^(-(t_newest - t)/H): the same coefficients as the user's profile sum."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0)
    decay: np.ndarray = np.exp2(-(t.max() - t) / half_life_seconds)
    result: np.ndarray = np.asarray(weights, dtype=np.float64) * decay
    return result


def find_interests(
    keys: list[bytes], vectors: np.ndarray, coefficients: np.ndarray, *, max_interests: int
) -> list[Interest]:
    """The user's up to `max_interests` interests, most important first.

    One row per event: `keys` identify its text (equal keys, equal vectors), `coefficients`
    its decayed weight. Order-free: the events are merged per text and sorted by key before
    clustering, so the same set of events gives the same interests in any order. Texts whose
    summed weight is not positive (disliked) form no interest."""
    if max_interests < 1:
        raise ValueError(f"max_interests must be >= 1, got {max_interests}")
    parts: dict[bytes, list[float]] = {}
    rows: dict[bytes, np.ndarray] = {}
    for key, vector, coefficient in zip(keys, vectors, coefficients, strict=True):
        parts.setdefault(key, []).append(float(coefficient))
        rows[key] = vector
    # fsum is exact, so a total does not depend on the order of its parts: neither does the
    # ranking of two interests of (mathematically) equal importance
    totals = {key: math.fsum(values) for key, values in parts.items()}
    ordered = sorted(k for k, total in totals.items() if total > 0)
    if not ordered:
        return []
    X = np.stack([np.asarray(rows[k], dtype=np.float64) for k in ordered])
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    w = np.array([totals[k] for k in ordered])
    if len(ordered) == 1:
        labels = np.ones(1, dtype=np.int64)
    else:
        labels = fcluster(linkage(X, method="ward"), t=WARD_CUT, criterion="distance")
    found = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        mean = w[idx] @ X[idx]
        vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        nearest = idx[np.argsort(-(X[idx] @ vector), kind="stable")]
        found.append(
            Interest(
                keys=[ordered[i] for i in nearest],
                importance=math.fsum(w[idx]),
                vector=vector,
            )
        )
    # ties by the medoid's key, so equal importances come out in a fixed order too
    found.sort(key=lambda i: (-i.importance, i.keys[0]))
    return found[:max_interests]


# How much an item's closeness to the interest it would serve counts against its popularity in
# the interest's cluster: score * exp(AFFINITY * cosine). On MovieLens (benchmarks/EVALUATION.md)
# recall@20 rose from 1.54x to 1.63x popularity's at 4.5 (3: 1.59x, 6: 1.62x, 10: 1.48x).
AFFINITY = 4.5


@dataclass(frozen=True)
class Ranking:
    """A cluster's ranked items: ids, popularity scores, and embeddings (a zero row where the
    item's embedding is unknown: closeness 0)."""

    item_ids: list[str]
    scores: np.ndarray  # (n,)
    vectors: np.ndarray  # (n, d) float32


def blend(
    rankings: dict[int, Ranking],
    served: list[tuple[int, float, np.ndarray | None]],
    *,
    seen: set[str],
    affinity: float = AFFINITY,
) -> list[tuple[str, float, int]]:
    """Items for a user's interests, best first: for each interest (its cluster, share and
    unit vector, in `served`), each unseen item of the cluster's ranking scores share *
    score / the cluster's top score * exp(affinity * cosine(item, interest)); an item's scores
    add up over interests. Returns (item, score, the index in `served` that gave most), ties
    by item id."""
    totals: dict[str, float] = {}
    best: dict[str, tuple[float, int]] = {}
    for index, (cluster, share, direction) in enumerate(served):
        ranking = rankings.get(cluster)
        if ranking is None or not len(ranking.scores) or share <= 0:
            continue
        top = float(np.abs(ranking.scores).max())
        if top <= 0:
            continue
        parts = share * ranking.scores / top
        if direction is not None:
            parts = parts * np.exp(affinity * (ranking.vectors @ direction.astype(np.float32)))
        for item, part in zip(ranking.item_ids, parts.tolist(), strict=True):
            if item in seen:
                continue
            totals[item] = totals.get(item, 0.0) + part
            if item not in best or part > best[item][0]:
                best[item] = (part, index)
    order = sorted(totals, key=lambda item: (-totals[item], item))
    return [(item, totals[item], best[item][1]) for item in order]
