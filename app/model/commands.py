"""`python -m app checkpoint list|show` and `python -m app recluster`."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.clustering.codec import CheckpointError, decode_arrays
from app.config import Settings
from app.db.session import Database
from app.embedding.embedder import configured_embedder
from app.model import repository as model_repository
from app.model.trainer import Trainer

log = logging.getLogger(__name__)
RECLUSTER_ATTEMPTS = 3


def list_rows(db: Database) -> list[dict[str, Any]]:
    """One line per stored checkpoint, oldest first (the arrays are not loaded)."""
    with db.read() as session:
        return model_repository.checkpoint_summaries(session)


def format_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no checkpoints yet"
    lines = [f"{'version':>8} {'gen':>4} {'created_at':<25} {'rows':>8} {'k':>4}  embedding model"]
    for r in rows:
        created = r["created_at"].isoformat(timespec="seconds")
        lines.append(
            f"{r['version']:>8} {r['generation']:>4} {created:<25} {r['trained_rows']:>8} "
            f"{r['n_clusters']:>4}  {r['embedding_model']}"
        )
    return "\n".join(lines)


def show(db: Database, version: int) -> dict[str, Any] | None:
    """A checkpoint's summary: its meta (no RNG state or witness), cluster weights, quality."""
    with db.read() as session:
        row = model_repository.get_checkpoint(session, version)
        if row is None:
            return None
        quality = model_repository.metrics_of_version(session, version)
    meta = {k: v for k, v in row.meta.items() if k not in ("rng", "witness")}
    _, counts = decode_arrays(model_repository.checkpoint_state(row))
    summary: dict[str, Any] = {
        "version": row.version,
        "generation": row.generation,
        "created_at": row.created_at.isoformat(),
        "embedding_model": row.embedding_model,
        "n_features": row.n_features,
        "n_clusters": row.n_clusters,
        "trained_rows": row.trained_rows,
        "cluster_weights": [round(float(c), 3) for c in counts],
        "meta": meta,
        "quality": None,
    }
    if quality is not None:
        summary["quality"] = {
            "computed_at": quality.computed_at.isoformat(),
            "n_users": quality.n_users,
            "silhouette": quality.silhouette,
            "davies_bouldin": quality.davies_bouldin,
            "sizes": quality.sizes,
        }
    return summary


def recluster(db: Database, settings: Settings, *, clusters: int) -> int:
    """Train a new generation with `clusters` centers on every profile; returns its version.

    It commits as the next version. A running trainer that commits the same number first
    wins, and this retries on top of it; the trainer that loses restores from the newest
    checkpoint and continues with the new generation.
    """
    embedder = configured_embedder(settings)
    trainer = Trainer(settings, embedding_model=embedder.space_id, dim=embedder.dim)
    for attempt in range(1, RECLUSTER_ATTEMPTS + 1):
        try:
            trainer.restore(db)  # carries the generation number forward
        except CheckpointError as exc:
            # A refused restore names recluster as the way out: the new generation needs only
            # the old one's number, not its model.
            log.warning("reclustering without the latest model, which cannot be restored: %s", exc)
            trainer.generation = _latest_generation(db)
        try:
            return trainer.recluster(db, clusters=clusters)
        except IntegrityError:
            if attempt == RECLUSTER_ATTEMPTS:
                raise
            log.warning("a trainer committed the same version first; retrying")
    raise AssertionError("unreachable")


def _latest_generation(db: Database) -> int:
    with db.read() as session:
        row = model_repository.latest_checkpoint(session)
    return row.generation if row is not None else 1
