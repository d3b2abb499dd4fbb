"""The service's worker loop replayed in-process on MovieLens, for trying settings quickly.

Not a measurement of the service (evaluate_movielens is): no HTTP, no threads, no timing, so
two runs with the same settings give the same model. It runs the app's own pipeline on a
scratch SQLite file: the ratings go into the `event` table chunk by chunk (in time order, as
the replay sends them), and after each chunk the worker's rounds run until one does nothing:
`apply_pending` (the profile stage), then `Trainer.step` (the train stage, with its first-fit
gate and, when a round finds nothing to train, its consolidation). The embedding cache is
filled first (seed.warm_cache), so no round encodes. With --recluster, `Trainer.recluster`
(the multi-start refit) then fits a new generation on the final profiles, scored as well.

    .venv/bin/python -m benchmarks.evaluation.simulate DATA_DIR \\
        --set APP_MODEL_HALF_LIFE=0,1000,50000 --set APP_BATCH_SIZE=256,1024
    .venv/bin/python -m benchmarks.evaluation.simulate DATA_DIR \\
        --set APP_SEED=0,1,2,3 --set APP_CONSOLIDATE=false,true --recluster

Each line: the settings, profile rows trained, and for the streaming model (and after the
recluster) its inertia ratio to KMeans(n_init=10) on the same profiles, silhouette (service /
exact) and recall@20 lift over popularity (service / exact).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from app.clustering.metrics import compute_quality
from app.clustering.model import OnlineKMeans
from app.config import Settings, load_settings
from app.db.session import Database
from app.embedding.embedder import DEFAULT_MODEL_ID, Embedder, load_embedder
from app.model.trainer import Trainer
from app.profile.service import apply_pending
from benchmarks import common, movielens, seed
from benchmarks.evaluation import offline
from benchmarks.evaluation.recommend import recall_at_k
from benchmarks.evaluation.run import SERVICE_SETTINGS, chunks, setting_kwargs
from benchmarks.movielens import MovieLens


def simulate(
    ml: MovieLens,
    embedder: Embedder,
    settings: Settings,
    *,
    n_chunks: int = 40,
    tags: bool = False,
    recluster: bool = False,
) -> dict[str, Any]:
    """The final profiles and model (and with `recluster`, the refitted model)."""
    url = common.fresh_database(settings.database_url)
    db = Database(url)
    try:
        texts = ml.item_texts(with_tags=tags)
        seed.items(db, texts)
        seed.warm_cache(db, embedder, list(texts.values()))
        trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
        trainer.restore(db)
        rows = 0
        for chunk in chunks(ml.train, n_chunks):
            seed.events(db, (movielens.event_row(r) for r in chunk))
            rows += _until_idle(db, embedder, trainer, settings)
        profiles = offline.service_profiles(url, embedder.dim)
        users = sorted(profiles, key=int)
        X = np.stack([profiles[u] for u in users])
        result = {"users": users, "X": X, "rows": rows, "stream": _model(X, trainer.model)}
        if recluster:
            trainer.recluster(db, clusters=trainer.model.n_clusters)
            result["recluster"] = _model(X, trainer.model)
        return result
    finally:
        db.dispose()


def _until_idle(db: Database, embedder: Embedder, trainer: Trainer, settings: Settings) -> int:
    """The worker's rounds (a profile step, then a train step) until a round does nothing: what
    the service does between two replay chunks. Returns the profile rows trained."""
    trained = 0
    while True:
        applied = apply_pending(db, embedder, settings).applied
        rows = trainer.step(db).rows
        trained += rows
        if not applied and not rows:
            return trained


def _model(X: np.ndarray, model: OnlineKMeans) -> dict[str, Any]:
    # All of MovieLens' 610 users fit in the sample: the silhouette is exact.
    quality = compute_quality(X, model, sample_size=10_000, seed=0)
    return {"quality": quality, "labels": model.predict(X)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", type=Path, help="the ml-latest-small folder")
    p.add_argument("--set", action="append", default=[], help="APP_X=V1,V2 (all combinations)")
    p.add_argument("--chunks", type=int, default=40, help="time-ordered replay steps")
    p.add_argument("--tags", action="store_true", help="add history tags to item texts")
    p.add_argument("--recluster", action="store_true", help="then score a recluster too")
    args = p.parse_args()
    ml = movielens.load(args.data_dir)
    embedder = load_embedder(DEFAULT_MODEL_ID)
    chosen = {"APP_CLUSTERS": "8"} | dict(kv.split("=", 1) for kv in args.set)
    grid = SERVICE_SETTINGS | chosen
    names = list(grid)
    seen, relevant = ml.seen(), ml.held_out_likes()
    popularity = recall_at_k(ml.train, seen, relevant, None)["recall"]
    database_url = f"sqlite:///{common.work_dir('simulate') / 'simulate.db'}"
    exact_cache: dict[tuple[str, int], dict[str, Any]] = {}
    print(common.machine())
    for values in itertools.product(*(grid[n].split(",") for n in names)):
        setting = dict(zip(names, values, strict=True))
        s = load_settings(**setting_kwargs(setting), database_url=database_url, worker="off")
        result = simulate(
            ml, embedder, s, n_chunks=args.chunks, tags=args.tags, recluster=args.recluster
        )
        key = (str(s.profile_half_life_days), s.clusters)
        if key not in exact_cache:
            exact_cache[key] = offline.exact_kmeans(result["X"], s.clusters, seed=s.seed)
        exact = exact_cache[key]
        exact_of = dict(zip(result["users"], (int(c) for c in exact["labels"]), strict=True))
        exact_lift = recall_at_k(ml.train, seen, relevant, exact_of)["recall"] / popularity
        line = [
            " ".join(f"{n.removeprefix('APP_')}={setting[n]}" for n in chosen),
            f"| rows {result['rows']}",
        ]
        for label in ("stream", "recluster"):
            if label not in result:
                continue
            q = result[label]["quality"]
            labels = (int(c) for c in result[label]["labels"])
            cluster_of = dict(zip(result["users"], labels, strict=True))
            lift = recall_at_k(ml.train, seen, relevant, cluster_of)["recall"] / popularity
            line.append(
                f"| {label}: inertia ratio {q['inertia'] / exact['inertia']:.3f} "
                f"silhouette {q['silhouette']:.3f}/{exact['silhouette']:.3f} "
                f"lift {lift:.2f}x/{exact_lift:.2f}x"
            )
        print(" ".join(line), flush=True)


if __name__ == "__main__":
    main()
