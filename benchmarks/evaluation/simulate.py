"""The service's train stage replayed in-process, for investigating settings quickly.

Not a measurement of the service (evaluate_movielens.py is): it mirrors the worker loop with the
app's own pieces (app.profile.math.fold, app.clustering.model.OnlineKMeans, compute_quality): a
profile step folds `batch_size` events in arrival order, then a train step partial_fits the
profiles changed since they were last trained (by user id, at most batch_size; the first fit
waits for min_users_first_fit users). Embeddings come from a warm database's cache.

    .venv/bin/python benchmarks/evaluation/simulate.py DATA_DIR benchmarks/out/warm.db \
        --set APP_MODEL_HALF_LIFE=0,1000,50000 --set APP_BATCH_SIZE=256,1024
    .venv/bin/python benchmarks/evaluation/simulate.py DATA_DIR benchmarks/out/warm.db \
        --set APP_SEED=0,1,2,3 --lloyd 1      # the proposed consolidation, prototyped
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import data, offline  # noqa: E402
from evaluation.data import MovieLens  # noqa: E402
from evaluation.recommend import recall_at_k  # noqa: E402

from app.clustering.metrics import compute_quality  # noqa: E402
from app.clustering.model import OnlineKMeans  # noqa: E402
from app.config import Settings, load_settings  # noqa: E402
from app.profile.math import ProfileSum, fold, profile_vector  # noqa: E402


def simulate(
    ml: MovieLens,
    vectors: dict[str, np.ndarray],
    settings: Settings,
    *,
    chunks: int = 40,
    lloyd: int = 0,
) -> dict[str, object]:
    """lloyd > 0 prototypes a consolidation the service does not have: after each replay chunk
    (when the stream pauses), that many Lloyd iterations over every current profile."""
    k, bs = settings.clusters, settings.batch_size
    model = OnlineKMeans(
        n_clusters=k,
        n_features=next(iter(vectors.values())).shape[0],
        half_life=settings.model_half_life or None,
        batch_size=max(bs, k),
        seed=settings.seed,
    )
    sums: dict[str, ProfileSum] = {}
    untrained: set[str] = set()
    rows = 0

    def train_step() -> bool:
        nonlocal rows
        limit = bs
        if not model.fitted:
            if len(untrained) < settings.min_users_first_fit:
                return False
            limit = max(bs, settings.min_users_first_fit)
        users = sorted(untrained)[:limit]  # the service orders by user_id (a string)
        X = np.stack([v for u in users if (v := profile_vector(sums[u])) is not None])
        model.partial_fit(X)
        rows += len(X)
        untrained.difference_update(users)
        return True

    for chunk in data.chunks(ml.train, chunks):
        for start in range(0, len(chunk), bs):
            step: dict[str, list[data.Rating]] = {}
            for r in chunk[start : start + bs]:
                step.setdefault(r.user, []).append(r)
            for user, rs in step.items():
                sums[user] = fold(
                    sums.get(user),
                    times=np.array([r.time for r in rs], dtype=np.float64),
                    weights=np.array([settings.event_weights[r.event_type] for r in rs]),
                    vectors=np.stack([vectors[r.movie] for r in rs]),
                    half_life_seconds=settings.profile_half_life_seconds,
                )
                untrained.add(user)
            train_step()
        if lloyd and model.fitted:
            _lloyd(model, np.stack([profile_vector(p) for p in sums.values()]), lloyd)
    while untrained and train_step():
        pass
    users = sorted(sums, key=int)
    X = np.stack([profile_vector(sums[u]) for u in users]).astype(np.float64)
    quality = compute_quality(X, model, sample_size=10_000, seed=settings.seed)
    labels = model.predict(X)
    return {"X": X, "users": users, "quality": quality, "labels": labels, "rows": rows}


def _lloyd(model: OnlineKMeans, X: np.ndarray, iterations: int) -> None:
    """Move each center to the mean of the profiles nearest to it (empty clusters stay)."""
    centers = model.estimator.cluster_centers_
    for _ in range(iterations):
        labels = model.predict(X)
        for c in range(model.n_clusters):
            if (labels == c).any():
                centers[c] = X[labels == c].mean(axis=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", type=Path)
    p.add_argument("warm_db", type=Path)
    p.add_argument("--set", action="append", default=[], help="APP_X=V1,V2 (all combinations)")
    p.add_argument("--chunks", type=int, default=40)
    p.add_argument("--tags", action="store_true")
    p.add_argument("--lloyd", type=int, default=0, help="Lloyd iterations after each chunk")
    args = p.parse_args()
    ml = data.load(args.data_dir)
    vectors = offline.item_vectors(ml.item_texts(with_tags=args.tags), f"sqlite:///{args.warm_db}")
    base = {"APP_MIN_USERS_FIRST_FIT": "200", "APP_CLUSTERS": "8"}
    grid = dict(base | {k: v for k, v in (kv.split("=", 1) for kv in args.set)})
    names = list(grid)
    seen, relevant = ml.seen(), ml.held_out_likes()
    popularity = recall_at_k(ml.train, seen, relevant, None)["recall"]
    exact_cache: dict[tuple[str, int], dict[str, object]] = {}
    for values in itertools.product(*(grid[n].split(",") for n in names)):
        setting = dict(zip(names, values, strict=True))
        s = load_settings(**{n.removeprefix("APP_").lower(): v for n, v in setting.items()})
        result = simulate(ml, vectors, s, chunks=args.chunks, lloyd=args.lloyd)
        key = (str(s.profile_half_life_days), s.clusters)
        if key not in exact_cache:
            exact_cache[key] = offline.exact_kmeans(result["X"], s.clusters, seed=s.seed)
        exact = exact_cache[key]
        q = result["quality"]
        cluster_of = dict(zip(result["users"], (int(c) for c in result["labels"]), strict=True))
        lift = recall_at_k(ml.train, seen, relevant, cluster_of)["recall"] / popularity
        exact_of = dict(zip(result["users"], (int(c) for c in exact["labels"]), strict=True))
        exact_lift = recall_at_k(ml.train, seen, relevant, exact_of)["recall"] / popularity
        print(
            " ".join(f"{n.removeprefix('APP_')}={v}" for n, v in setting.items()),
            f"| rows {result['rows']} inertia ratio {q['inertia'] / exact['inertia']:.3f}",
            f"silhouette {q['silhouette']:.3f}/{exact['silhouette']:.3f}",
            f"lift {lift:.2f}x/{exact_lift:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
