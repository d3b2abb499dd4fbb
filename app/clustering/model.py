"""OnlineKMeans: MiniBatchKMeans with forgetting, a plain seeded object without I/O."""

from __future__ import annotations

import math

import numpy as np
from sklearn.cluster import MiniBatchKMeans

# Everything is float64. Centers are running means over up to millions of rows and the counts
# are incremented by 1 per row: float32 counts stop growing at 2**24 and float32 means drift.
# The cost is nil (k x d state, a cast of each batch) and one fixed dtype is what makes a
# checkpoint restore bit-exact: sklearn keeps whatever dtype the first batch had.
DTYPE = np.float64

# Rows per chunk when computing distances, so an (n, k) distance pass never holds n x d temporaries.
_DISTANCE_CHUNK = 65536


class NotFittedError(RuntimeError):
    """Raised when distances or predictions are asked of a model that has seen no data."""


class OnlineKMeans:
    """Mini-batch k-means over L2-normalised vectors, with exponential forgetting of counts."""

    def __init__(
        self,
        *,
        n_clusters: int,
        n_features: int,
        half_life: float | None,
        batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        if n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if batch_size < n_clusters:
            # the first mini-batch must hold at least one row per cluster to initialise it
            raise ValueError(f"batch_size ({batch_size}) must be >= n_clusters ({n_clusters})")
        if half_life is not None and not (math.isfinite(half_life) and half_life >= 0):
            raise ValueError(f"half_life must be None or a finite number >= 0, got {half_life}")
        self.n_clusters = n_clusters
        self.n_features = n_features
        self.half_life = half_life
        self.batch_size = batch_size
        self.seed = seed
        # n_init=1: partial_fit initialises exactly once anyway; saying so avoids surprises.
        # compute_labels=False: labels_/inertia_ of the last batch would cost a second pass
        # over every batch and nothing reads them.
        self._estimator = MiniBatchKMeans(
            n_clusters=n_clusters,
            init="k-means++",
            n_init=1,
            batch_size=batch_size,
            random_state=seed,
            compute_labels=False,
        )

    @property
    def estimator(self) -> MiniBatchKMeans:
        """The wrapped sklearn estimator (for the checkpoint codec only)."""
        return self._estimator

    @property
    def fitted(self) -> bool:
        """Whether the model has centers."""
        return hasattr(self._estimator, "cluster_centers_")

    @property
    def centers(self) -> np.ndarray:
        """Copy of the (k, d) cluster centers."""
        return np.array(self._fitted_estimator().cluster_centers_, dtype=DTYPE, copy=True)

    @property
    def counts(self) -> np.ndarray:
        """Copy of the (decayed) per-center weight sums."""
        return np.array(self._fitted_estimator()._counts, dtype=DTYPE, copy=True)

    @property
    def n_steps(self) -> int:
        """Number of mini-batch steps taken so far."""
        return int(getattr(self._estimator, "n_steps_", 0))

    def forgetting_factor(self, n_rows: int) -> float:
        """Factor applied to the counts before a step of n_rows rows (1.0 = no forgetting)."""
        if not self.half_life:
            return 1.0
        return float(0.5 ** (n_rows / self.half_life))

    def partial_fit(self, X: np.ndarray) -> None:
        """Fold rows into the model in mini-batches of at most batch_size rows."""
        X = self._check_input(X)
        n = X.shape[0]
        if n == 0:
            return
        if not self.fitted and n < self.n_clusters:
            raise ValueError(
                f"the first batch needs at least n_clusters={self.n_clusters} rows, got {n}"
            )
        # Near-equal chunks so no step is a tiny remainder, and never fewer rows than clusters
        # per chunk so the first one can initialise; deterministic in n, k and batch_size.
        n_chunks = max(1, min(-(-n // self.batch_size), n // self.n_clusters))
        for chunk in np.array_split(X, n_chunks):
            if self.fitted:
                # Forget before the step: the decayed counts are the memory the new rows
                # are averaged against, so old rows lose weight at a rate set by half_life.
                self._estimator._counts *= self.forgetting_factor(chunk.shape[0])
            self._estimator.partial_fit(chunk)

    def set_centers(self, centers: np.ndarray) -> None:
        """Replace the (k, d) centers, e.g. by a Lloyd step. The counts, step count and random
        state are kept, so later partial_fit steps weigh their rows as before."""
        est = self._fitted_estimator()
        centers = np.array(centers, dtype=DTYPE, order="C", copy=True)  # sklearn updates in place
        if centers.shape != est.cluster_centers_.shape:
            raise ValueError(
                f"expected centers of shape {est.cluster_centers_.shape}, got {centers.shape}"
            )
        if not np.isfinite(centers).all():
            raise ValueError("centers contain NaN or infinite values")
        est.cluster_centers_ = centers

    def distances(self, X: np.ndarray) -> np.ndarray:
        """(n, k) Euclidean distances from each row to each center."""
        centers = self._fitted_estimator().cluster_centers_
        X = self._check_input(X)
        center_sq = np.einsum("ij,ij->i", centers, centers)
        out = np.empty((X.shape[0], centers.shape[0]), dtype=DTYPE)
        for start in range(0, X.shape[0], _DISTANCE_CHUNK):
            block = X[start : start + _DISTANCE_CHUNK]
            sq = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * (block @ centers.T)
            sq += center_sq[None, :]
            # expanding |x-c|^2 can round slightly below zero for a point on its center
            np.maximum(sq, 0.0, out=sq)
            np.sqrt(sq, out=out[start : start + block.shape[0]])
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Index of the nearest center for each row (argmin of distances, so the two agree)."""
        return np.asarray(np.argmin(self.distances(X), axis=1))

    def _fitted_estimator(self) -> MiniBatchKMeans:
        if not self.fitted:
            raise NotFittedError("the clustering model has not been trained on any data yet")
        return self._estimator

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=DTYPE)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("input contains NaN or infinite values")
        return X
