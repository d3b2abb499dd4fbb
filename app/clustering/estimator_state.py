"""MiniBatchKMeans' private state, in one place: the only module that reads or writes it.

partial_fit keeps its running state in private attributes (counts, RNG, step counters). The
checkpoint codec saves and restores it through `read` and `write`, and the model's forgetting
goes through `counts` and `decay_counts`, so a scikit-learn release that renames, adds or
reinterprets any of it fails here and in tests/clustering, nowhere else. `witness` records
what the installed release does with a state, so that a restore under another release can
be checked against what the writing release did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

# The fitted state: what a checkpoint saves, and what `write` derives from the machine as
# partial_fit does. A release that keeps anything else cannot be saved exactly.
SAVED = frozenset(
    {"cluster_centers_", "_counts", "n_steps_", "_n_since_last_reassign", "_batch_size"}
    | {"_init_size", "n_features_in_", "_tol", "_n_init", "_random_state"}
)
RUNTIME = frozenset({"_n_threads", "_n_features_out"})


@dataclass(frozen=True)
class EstimatorState:
    """partial_fit's running state as plain values (the arrays float64, as the model keeps)."""

    centers: np.ndarray
    counts: np.ndarray
    n_steps: int
    n_since_last_reassign: int
    batch_size: int
    init_size: int
    n_features_in: int
    tol: float
    n_init: int
    random_state: np.random.RandomState


def counts(estimator: MiniBatchKMeans) -> np.ndarray:
    """Copy of the (decayed) per-center weight sums of a fitted estimator."""
    return np.array(estimator._counts, dtype=np.float64, copy=True)


def decay_counts(estimator: MiniBatchKMeans, factor: float) -> None:
    """Scale the per-center weight sums in place (forgetting, before a partial_fit step)."""
    estimator._counts *= factor


def read(estimator: MiniBatchKMeans) -> EstimatorState:
    """The state of a fitted estimator (live objects: the caller copies what it keeps)."""
    return EstimatorState(
        centers=estimator.cluster_centers_,
        counts=estimator._counts,
        n_steps=int(estimator.n_steps_),
        n_since_last_reassign=int(estimator._n_since_last_reassign),
        batch_size=int(estimator._batch_size),
        init_size=int(estimator._init_size),
        n_features_in=int(estimator.n_features_in_),
        tol=float(estimator._tol),
        n_init=int(estimator._n_init),
        random_state=estimator._random_state,
    )


def write(estimator: MiniBatchKMeans, state: EstimatorState) -> None:
    """Give an unfitted estimator `state`, so its next partial_fit continues from it."""
    estimator.cluster_centers_ = state.centers
    estimator._counts = state.counts
    estimator.n_steps_ = state.n_steps
    estimator._n_since_last_reassign = state.n_since_last_reassign
    estimator._batch_size = state.batch_size
    estimator._init_size = state.init_size
    estimator.n_features_in_ = state.n_features_in
    estimator._tol = state.tol
    estimator._n_init = state.n_init
    estimator._random_state = state.random_state
    # Runtime properties, not training state: derived from this machine like partial_fit does.
    estimator._n_threads = _openmp_effective_n_threads()
    estimator._n_features_out = state.centers.shape[0]


def witness(estimator: MiniBatchKMeans) -> tuple[dict[str, list[Any]], set[str]]:
    """What this scikit-learn does with the state, on a copy: the clusters of probe rows (the
    centres, and a point between each and its neighbour), then one step on them without
    reassignment (so no random draw): how far each centre moved and the counts after. And the
    names of the state it keeps after the step."""
    centers = estimator.cluster_centers_
    # Deterministic, no RNG; each centre is its own row, so every count takes part in the step.
    probe = np.vstack([centers, 0.75 * centers + 0.25 * np.roll(centers, 1, axis=0)])
    trial = copy.deepcopy(estimator)
    trial.set_params(reassignment_ratio=0.0)
    labels = trial.predict(probe)
    trial.partial_fit(probe)
    found: dict[str, list[Any]] = {
        "labels": [int(v) for v in labels],
        "moved": [float(v) for v in np.linalg.norm(trial.cluster_centers_ - centers, axis=1)],
        "counts": [float(v) for v in trial._counts],
    }
    return found, set(vars(trial)) - set(trial.get_params(deep=False))


def state_problem(names: set[str]) -> str | None:
    """What differs between the state an estimator keeps and the state this module knows."""
    known = SAVED | RUNTIME
    differences = [
        f"{what} {sorted(found)}"
        for what, found in (
            ("keeps state a checkpoint does not save", names - known),
            ("lacks state a restore sets", known - names),
        )
        if found
    ]
    return f"its MiniBatchKMeans {' and '.join(differences)}" if differences else None
