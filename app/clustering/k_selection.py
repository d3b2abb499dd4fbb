"""A reasoned number of clusters: cross-validated inertia over candidate k, with the 1-SE rule.

Each candidate k is fitted on all but one fold of the sample and scored on the fold it did not
see (mean squared distance of a user to the nearest centre: the inertia of users the model has
not fitted). More clusters always fit the users they saw more closely; on users they did not
see the gain flattens once the clusters stop being real, because each centre is estimated from
fewer members. The chosen k is the smallest whose held-out inertia is within one standard error
(over folds, and at least 1%) of the best, so a flat stretch buys nothing; and a model that
already has a k within that band keeps it, so the choice does not flip from sample to sample.

Why not the silhouette: on sentence embeddings it is highest at k=2 (it rewards one tight group
against the rest; on MovieLens k=2 scores 0.58 and recommends no better than popularity), and
the simplified silhouette follows it; both are reported per candidate for comparison.
benchmarks/EVALUATION.md has the measurements. With plentiful data the held-out inertia keeps
falling for longer, so the candidates stop at 32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from app.clustering.metrics import simplified_silhouette
from app.clustering.refit import first_fit_users

CANDIDATES = (2, 3, 4, 6, 8, 12, 16, 24, 32)
FOLDS = 5
STARTS = 3  # k-means++ starts for each candidate's fit on the whole sample; 1 per fold
TOLERANCE = 0.01  # a gain below 1% of the held-out inertia does not justify more clusters
CRITERION = (
    f"held-out inertia, {FOLDS}-fold cross-validation: the smallest k within one standard "
    f"error (at least {TOLERANCE:.0%}) of the best"
)


@dataclass(frozen=True)
class Candidate:
    k: int
    held_out_inertia: float  # mean over users not fitted on of the squared distance to a centre
    standard_error: float  # of that mean, over folds
    simplified_silhouette: float  # of the fit on the whole sample, for comparison only
    centers: np.ndarray = field(repr=False, compare=False)  # that fit's (k, d) centres

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "held_out_inertia": self.held_out_inertia,
            "standard_error": self.standard_error,
            "simplified_silhouette": self.simplified_silhouette,
        }


@dataclass(frozen=True)
class KReport:
    criterion: str
    sample_size: int
    candidates: list[Candidate]
    best: int  # the k the criterion chooses
    reason: str

    def candidate(self, k: int) -> Candidate:
        return next(c for c in self.candidates if c.k == k)

    def as_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "sample_size": self.sample_size,
            "candidates": [c.as_dict() for c in self.candidates],
            "best": self.best,
            "reason": self.reason,
        }


def candidates_for(users: int, candidates: tuple[int, ...] = CANDIDATES) -> list[int]:
    """The candidate k a population supports (the first-fit rule's members per cluster)."""
    return [k for k in candidates if first_fit_users(k) <= users]


def score_k(
    X: np.ndarray,
    *,
    seed: int,
    candidates: tuple[int, ...] = CANDIDATES,
    current: int | None = None,
) -> KReport:
    """Score every supported candidate on X (unit rows) and choose one; `current` (the model's
    k, scored too) is kept while it is within one standard error of the best."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    wanted = tuple(sorted(set(candidates) | ({current} if current else set())))
    distinct = len(np.unique(X, axis=0))  # users with the same profile are one point
    ks = [k for k in candidates_for(len(X), wanted) if k <= distinct]
    if not ks:
        raise ValueError(f"{len(X)} users support none of the candidates {list(wanted)}")
    folds = np.array_split(np.random.default_rng(seed).permutation(len(X)), FOLDS)
    scored = [_score(X, k, folds, seed) for k in ks]
    best = min(scored, key=lambda c: c.held_out_inertia)
    margin = max(best.standard_error, TOLERANCE * best.held_out_inertia)
    band = best.held_out_inertia + margin
    within = [c for c in scored if c.held_out_inertia <= band]
    kept = next((c for c in within if c.k == current), None)
    chosen = kept or within[0]
    summary = (
        f"lowest held-out inertia {best.held_out_inertia:.4f} at k={best.k}, band {margin:.4f}"
    )
    if kept is not None and kept.k != within[0].k:
        reason = f"k={kept.k} (the current k) is within the band of the best; {summary}"
    elif chosen.k == best.k:
        reason = f"k={best.k}: {summary}; no smaller candidate is within the band"
    else:
        reason = f"k={chosen.k}: the smallest candidate within the band of the best; {summary}"
    return KReport(CRITERION, len(X), scored, chosen.k, reason)


def _score(X: np.ndarray, k: int, folds: list[np.ndarray], seed: int) -> Candidate:
    losses = []
    for i, held in enumerate(folds):
        fit = np.concatenate([f for j, f in enumerate(folds) if j != i])
        model = kmeans(X[fit], k, starts=1, seed=seed + i)
        losses.append(-model.score(X[held]) / len(held))
    whole = kmeans(X, k, starts=STARTS, seed=seed)
    distances = whole.transform(X)
    return Candidate(
        k=k,
        held_out_inertia=float(np.mean(losses)),
        standard_error=float(np.std(losses, ddof=1) / np.sqrt(len(folds))),
        simplified_silhouette=simplified_silhouette(distances, distances.argmin(axis=1)),
        centers=whole.cluster_centers_,
    )


def kmeans(X: np.ndarray, k: int, *, starts: int, seed: int) -> KMeans:
    """Exact k-means (Lloyd), best of `starts` k-means++ starts. Fewer distinct rows than k
    (users with identical profiles) leaves some centres duplicated, which is not an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(k, n_init=starts, random_state=seed).fit(X)
