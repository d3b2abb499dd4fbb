"""The evaluate stage: a quality snapshot of the current model, with cluster explanations."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.clustering.labels import cluster_keywords, representative_items
from app.clustering.metrics import compute_quality
from app.clustering.model import OnlineKMeans
from app.clustering.vectors import unit_rows
from app.config import Settings
from app.db.base import utcnow
from app.db.models import ClusterMetrics
from app.db.session import Database
from app.embedding import repository as embedding_repository
from app.embedding.embedder import text_hash
from app.event import repository as event_repository
from app.model import repository as model_repository
from app.profile import repository as profile_repository

RECENT_EVENTS = 20_000  # the texts that label clusters: the newest applied events
KEYWORDS = 8
ITEMS = 5


def evaluate(
    db: Database,
    model: OnlineKMeans,
    *,
    version: int,
    settings: Settings,
    embedding_model: str,
    previous: dict[str, int] | None = None,
) -> tuple[ClusterMetrics, dict[str, int]]:
    """Store a snapshot for `version`; returns it and the user -> cluster map it saw."""
    with db.read() as session:
        rows = profile_repository.sample(session, settings.metrics_max_users)
        X, kept = unit_rows([blob for _, blob in rows], model.n_features)
        user_ids = [rows[i][0] for i in kept]
        quality = compute_quality(
            X, model, sample_size=settings.metrics_sample_size, seed=settings.seed
        )
        labels = model.predict(X) if len(X) else np.empty(0, dtype=np.int64)
        assignment = dict(zip(user_ids, (int(c) for c in labels), strict=True))
        clusters = explain(session, model, assignment, embedding_model=embedding_model)
    for entry in clusters:
        entry["size"] = quality["sizes"][entry["cluster_id"]]
    changed = None
    if previous:
        common = [u for u in assignment if u in previous]
        if common:
            changed = sum(assignment[u] != previous[u] for u in common) / len(common)
    snapshot = ClusterMetrics(
        model_version=version,
        computed_at=utcnow(),
        changed_share=changed,
        clusters=clusters,
        **quality,
    )
    with db.write() as session:
        model_repository.add_metrics(session, snapshot)
    return snapshot, assignment


def explain(
    session: Session, model: OnlineKMeans, assignment: dict[str, int], *, embedding_model: str
) -> list[dict[str, Any]]:
    """Per cluster: c-TF-IDF keywords over members' recent event texts, and the items nearest
    the centroid among those members interacted with."""
    recent = event_repository.recent_applied(session, RECENT_EVENTS)
    texts: dict[int, list[str]] = defaultdict(list)
    items: dict[int, dict[str, str]] = defaultdict(dict)
    for user_id, item_id, text in recent:
        cluster = assignment.get(user_id)
        if cluster is None or text is None:
            continue
        texts[cluster].append(text)
        if item_id is not None:
            items[cluster][item_id] = text
    keywords = cluster_keywords(
        {c: texts.get(c, []) for c in range(model.n_clusters)}, top_n=KEYWORDS
    )
    all_items = {i: t for per_cluster in items.values() for i, t in per_cluster.items()}
    vectors = embedding_repository.lookup(
        session, embedding_model, [text_hash(t) for t in all_items.values()]
    )
    result = []
    for cluster in range(model.n_clusters):
        candidates = [i for i, t in items.get(cluster, {}).items() if text_hash(t) in vectors]
        nearest: list[str] = []
        if candidates:
            matrix = np.stack([vectors[text_hash(all_items[i])] for i in candidates])
            nearest = representative_items(model.centers[cluster], candidates, matrix, top_n=ITEMS)
        result.append(
            {
                "cluster_id": cluster,
                "size": 0,
                "keywords": keywords.get(cluster, []),
                "representative_items": [{"item_id": i, "text": all_items[i]} for i in nearest],
            }
        )
    return result
