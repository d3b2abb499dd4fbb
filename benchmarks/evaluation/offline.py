"""The offline reference: the same profile math and embedder, exact KMeans on the result."""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score, silhouette_score

from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.models import UserProfile
from app.db.session import Database
from app.embedding import repository as embedding_repository
from app.embedding.embedder import DEFAULT_MODEL_ID, Embedder, load_embedder, text_hash
from app.profile.math import fold, profile_vector
from benchmarks.movielens import Rating


def backend_of(app_vars: dict[str, str]) -> str:
    """The embedding backend a service started with these APP_ variables runs."""
    default = str(Settings.model_fields["embedding_backend"].default)
    return app_vars.get("APP_EMBEDDING_BACKEND", default)


@cache
def embedder(backend: str) -> Embedder:
    """The bundled model on `backend`, as the service loads it (the same export folder)."""
    return load_embedder(DEFAULT_MODEL_ID, backend=backend)


def item_vectors(
    texts: dict[str, str], database_url: str | None, backend: str | None = None
) -> dict[str, np.ndarray]:
    """Each movie's embedding: from the service's cache when we can read its database (the
    vectors it folded), else from the same embedder."""
    model = embedder(backend or backend_of({}))
    hashes = {m: text_hash(t) for m, t in texts.items()}
    found: dict[bytes, np.ndarray] = {}
    if database_url:
        db = Database(database_url)
        try:
            with db.read() as session:
                found = embedding_repository.lookup(session, model.model_id, list(hashes.values()))
        finally:
            db.dispose()
    missing = [m for m, h in hashes.items() if h not in found]
    if missing:
        for m, v in zip(missing, model.encode([texts[m] for m in missing]), strict=True):
            found[hashes[m]] = v
    return {m: found[h] for m, h in hashes.items()}


def profiles(
    train: list[Rating], vectors: dict[str, np.ndarray], settings: Settings
) -> tuple[list[str], np.ndarray]:
    """Final unit profile per user with app.profile.math.fold, as the service computes it."""
    per_user: dict[str, list[Rating]] = defaultdict(list)
    for r in train:
        per_user[r.user].append(r)
    users, rows = [], []
    for user in sorted(per_user, key=int):
        rs = per_user[user]
        total = fold(
            None,
            times=np.array([r.time for r in rs], dtype=np.float64),
            weights=np.array([settings.event_weights[r.event_type] for r in rs]),
            vectors=np.stack([vectors[r.movie] for r in rs]),
            half_life_seconds=settings.profile_half_life_seconds,
        )
        v = profile_vector(total)
        if v is not None:
            users.append(user)
            rows.append(v)
    return users, np.asarray(rows, dtype=np.float64)


def service_profiles(database_url: str, dim: int) -> dict[str, np.ndarray]:
    """The profiles the service holds, normalised the way its trainer and metrics see them."""
    db = Database(database_url)
    try:
        with db.read() as session:
            rows = session.query(UserProfile.user_id, UserProfile.vector_sum).all()
    finally:
        db.dispose()
    X, kept = unit_rows([blob for _, blob in rows], dim)
    return {rows[i][0]: X[j].astype(np.float64) for j, i in enumerate(kept)}


def exact_kmeans(X: np.ndarray, k: int, seed: int = 0) -> dict[str, object]:
    """sklearn KMeans(n_init=10) and the same quality numbers the service reports."""
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(X)
    labels = km.labels_
    return {
        "labels": labels,
        "inertia": float(km.inertia_),
        "silhouette": float(silhouette_score(X, labels)),
        "davies_bouldin": float(davies_bouldin_score(X, labels)),
        "sizes": sorted(np.bincount(labels, minlength=k).tolist(), reverse=True),
    }
