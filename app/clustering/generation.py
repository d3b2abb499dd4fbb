"""A proposed new generation: fitted on a sample, judged on users it did not fit, ids matched.

Pure: the trainer reads the sample and commits the outcome; this decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.clustering import refit
from app.clustering.k_selection import CANDIDATES, STARTS, KReport, kmeans, score_k
from app.clustering.matching import Matching, Transitions, match_ids, transitions
from app.clustering.model import OnlineKMeans


@dataclass(frozen=True)
class Proposal:
    trigger: str  # "first fit", "growth", "turnover", "recluster"
    adopted: bool
    reason: str
    k: int  # of the candidate
    sample_size: int
    held_out_size: int
    current_inertia: float | None  # mean squared distance of a held-out user to the model
    candidate_inertia: float | None  # the same for the candidate
    report: KReport | None
    model: OnlineKMeans  # the candidate
    matching: Matching
    transitions: Transitions | None

    def as_meta(self) -> dict[str, Any]:
        """What the checkpoint and the refit record say about this decision (JSON)."""
        return {
            "trigger": self.trigger,
            "adopted": self.adopted,
            "reason": self.reason,
            "k": self.k,
            "sample_size": self.sample_size,
            "held_out_size": self.held_out_size,
            "current_held_out_inertia": self.current_inertia,
            "candidate_held_out_inertia": self.candidate_inertia,
            "cluster_ids": self.matching.ids,
            "born": self.matching.born,
            "ended": self.matching.ended,
            "splits": _json_keys(self.transitions.splits if self.transitions else {}),
            "merges": _json_keys(self.transitions.merges if self.transitions else {}),
            "moved_share": self.transitions.moved_share if self.transitions else None,
            "k_report": self.report.as_dict() if self.report else None,
        }


def propose(
    X: np.ndarray,
    *,
    trigger: str,
    current: OnlineKMeans | None,
    current_ids: list[int],
    next_id: int,
    clusters: int | None,
    seed: int,
    half_life: float | None,
    batch_size: int,
    held_out: bool = True,
    report_rows: int | None = None,
) -> Proposal:
    """A candidate generation from the sample X (unit rows) and whether it replaces `current`.

    clusters=None is auto: k is the k report's choice (the current k kept while it is within the
    report's band). With held_out (the automatic refits), a fifth of X is only scored: the
    candidate replaces the model when its inertia on those users is refit.MIN_GAIN lower, or when
    auto chose another k. Without (the first fit, an operator's recluster) it always does. The k
    report scores at most report_rows of the fitted rows (a seeded subset): it fits 6 models per
    candidate, the candidate itself only one."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    fit_rows, held_rows = refit.split_held_out(len(X), seed=seed)
    if not held_out or current is None:
        fit_rows, held_rows = np.arange(len(X)), np.empty(0, dtype=np.int64)
    X_fit, X_held = X[fit_rows], X[held_rows]
    current_k = current.n_clusters if current is not None else None
    target = clusters or current_k
    report = None  # too few users for any candidate: only the fixed k is fitted
    X_report = X_fit
    if report_rows is not None and len(X_fit) > report_rows:
        rng = np.random.default_rng(seed)
        X_report = X_fit[np.sort(rng.choice(len(X_fit), size=report_rows, replace=False))]
    if len(X_report) >= refit.first_fit_users(min(CANDIDATES)):
        report = score_k(X_report, seed=seed, candidates=CANDIDATES, current=target)
    if clusters is not None:
        k = clusters
    else:
        k = report.best if report is not None else current_k or min(CANDIDATES)
    scored = report is not None and X_report is X_fit and any(c.k == k for c in report.candidates)
    centers = report.candidate(k).centers if scored and report else _fit(X_fit, k, seed)
    model = _online(X_fit, centers, seed=seed, half_life=half_life, batch_size=batch_size)
    current_inertia = candidate_inertia = None
    if current is None:
        adopted, reason = True, f"first model, k={k}"
    elif not held_out:
        adopted, reason = True, f"{trigger}: a new generation with k={k}"
    else:
        # The current model was trained on the held-out users too; judged as it is, it would
        # carry that advantage (about 2/m of the inertia with m members per cluster, more for
        # a centre seeded on a held-out user). So its centres are first re-estimated from the
        # fitted users only (one Lloyd step; a centre none of them is nearest to is dropped),
        # and both are judged on users neither was fitted to.
        current_inertia = mean_inertia(refit_on(current, X_fit), X_held)
        candidate_inertia = mean_inertia(model.centers, X_held)
        if k != current_k:
            adopted = True
            source = "the k report chose" if clusters is None else "APP_CLUSTERS asks for"
            reason = f"{source} k={k}; the model has k={current_k}"
        else:
            adopted = refit.better(current=current_inertia, candidate=candidate_inertia)
            verdict = "better" if adopted else "not better"
            reason = (
                f"held-out inertia {candidate_inertia:.4f} vs the model's {current_inertia:.4f}:"
                f" {verdict} by the required {refit.MIN_GAIN:.1%}"
            )
    if current is None:
        matching = Matching(ids=list(range(k)), born=list(range(k)), ended=[])
        moves = None
    else:
        matching = match_ids(current.centers, current_ids, model.centers, next_id=next_id)
        ids_now = np.asarray(current_ids)[current.predict(X)]
        moves = transitions(ids_now, np.asarray(matching.ids)[model.predict(X)])
    return Proposal(
        trigger=trigger,
        adopted=adopted,
        reason=reason,
        k=k,
        sample_size=len(X),
        held_out_size=len(X_held),
        current_inertia=current_inertia,
        candidate_inertia=candidate_inertia,
        report=report,
        model=model,
        matching=matching,
        transitions=moves,
    )


def refit_on(model: OnlineKMeans, X: np.ndarray) -> np.ndarray:
    """The model's centres moved to the mean of their nearest rows of X; centres without any
    are left out."""
    labels = model.predict(X)
    members = np.bincount(labels, minlength=model.n_clusters)
    sums = np.zeros((model.n_clusters, X.shape[1]))
    np.add.at(sums, labels, X)
    kept = members > 0
    return sums[kept] / members[kept, None]


def mean_inertia(centers: np.ndarray, X: np.ndarray) -> float:
    """Mean squared distance of the rows to their nearest centre (nan without rows)."""
    if not len(X):
        return float("nan")
    centers = np.asarray(centers, dtype=np.float64)
    center_sq = np.einsum("ij,ij->i", centers, centers)
    total = 0.0
    for start in range(0, len(X), 8192):  # bounded (rows, k) temporaries
        block = X[start : start + 8192]
        sq = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ centers.T + center_sq
        total += float(np.maximum(sq.min(axis=1), 0.0).sum())
    return total / len(X)


def _fit(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Centres of the best of STARTS k-means++ starts (Lloyd to convergence) on X."""
    return np.asarray(kmeans(X, k, starts=STARTS, seed=seed).cluster_centers_)


def _json_keys(mapping: dict[int, list[int]]) -> dict[str, list[int]]:
    return {str(key): value for key, value in mapping.items()}


def _online(
    X: np.ndarray, centers: np.ndarray, *, seed: int, half_life: float | None, batch_size: int
) -> OnlineKMeans:
    """An online model holding these centres: one pass over X gives it the state a stream
    continues from (counts near the member counts, its step count and random state), then the
    centres are set to the full fit's."""
    k = len(centers)
    model = OnlineKMeans(
        n_clusters=k,
        n_features=X.shape[1],
        half_life=half_life,
        batch_size=max(batch_size, k),
        seed=seed,
    )
    model.partial_fit(X)
    model.set_centers(centers)
    return model
