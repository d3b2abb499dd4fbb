"""The served model's inertia against exact KMeans on the same profiles, at any moment of a
replay: read from the service's database (its latest checkpoint and its profiles)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from app.clustering.codec import decode_arrays
from app.clustering.vectors import unit_rows
from app.db.models import UserProfile
from app.db.session import Database
from app.model import repository as model_repository

STARTS = 3  # exact KMeans starts per probe (10 for the final reference)


def probe(database_url: str, *, seed: int) -> dict[str, Any] | None:
    """Version, k, generation, users, served inertia and exact KMeans' inertia now."""
    db = Database(database_url)
    try:
        with db.read() as session:
            row = model_repository.latest_checkpoint(session)
            if row is None:
                return None
            centers, _ = decode_arrays(model_repository.checkpoint_state(row))
            blobs = session.query(UserProfile.vector_sum).filter(UserProfile.event_count > 0)
            X, _ = unit_rows([b for (b,) in blobs], row.n_features)
            version, generation, k = row.version, row.generation, row.n_clusters
    finally:
        db.dispose()
    if len(X) < k:
        return None
    X = X.astype(np.float64)
    served = float(np.square(np.linalg.norm(X[:, None, :] - centers[None], axis=2)).min(1).sum())
    exact = float(KMeans(k, n_init=STARTS, random_state=seed).fit(X).inertia_)
    return {
        "model_version": version,
        "generation": generation,
        "k": k,
        "users": len(X),
        "inertia": served,
        "exact_inertia": exact,
        "ratio": served / exact,
    }
