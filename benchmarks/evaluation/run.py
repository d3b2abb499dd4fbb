"""One evaluation run: replay MovieLens through the HTTP API, then score the service's answers
next to the offline reference and global popularity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from app.config import load_settings
from benchmarks.evaluation import drift, offline, quality
from benchmarks.evaluation.recommend import lift_interval, recall_at_k, served_recall
from benchmarks.movielens import MovieLens, Rating, event_json
from benchmarks.service import Client, Service

SEEDS = 10  # KMeans random states for the reference's spread
# The service's settings for this data set (the simulator uses them too): the model's own
# defaults (the first fit at 10 users per cluster), except for pacing, because a replay plays
# 22 years in minutes; EVALUATION.md gives the reason for each.
SERVICE_SETTINGS = {
    "APP_EVALUATE_INTERVAL_SECONDS": "0.5",
    "APP_POLL_INTERVAL_SECONDS": "0.05",
    "APP_CONSOLIDATE_INTERVAL_SECONDS": "0",  # a replay of minutes: consolidate whenever idle
    "APP_REFIT_INTERVAL_SECONDS": "0",  # and try a refit whenever one is due
    "APP_RECOMMEND_INTERVAL_SECONDS": "0",  # rankings after every evaluation
}


@dataclass
class Config:
    settings: dict[str, str]  # APP_* for the service (and the same math offline)
    chunks: int = 40
    tags: bool = False
    recluster: bool = False
    drift: bool = False

    @property
    def name(self) -> str:
        s = self.settings
        tags = "-tags" if self.tags else ""
        return f"k{s['APP_CLUSTERS']}-hl{s['APP_PROFILE_HALF_LIFE_DAYS']}{tags}"


def setting_kwargs(app_vars: dict[str, str]) -> dict[str, str]:
    """{"APP_CLUSTERS": "8"} -> {"clusters": "8"}: the names of app.config.Settings' fields."""
    return {name.removeprefix("APP_").lower(): value for name, value in app_vars.items()}


def chunks(train: list[Rating], n: int) -> list[list[Rating]]:
    """n time-ordered chunks of (nearly) equal size: the replay's steps."""
    size = -(-len(train) // n)
    return [train[i : i + size] for i in range(0, len(train), size)]


def replay(
    client: Client, ml: MovieLens, config: Config, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Items first, then the history in time-ordered chunks; after each chunk wait until it is
    folded, so each model version reflects the replay up to a known date. With the service's
    database, each step also records the served model's inertia against exact KMeans on the
    same profiles at that moment."""
    client.post_items(ml.item_texts(with_tags=config.tags))
    seed = int(config.settings.get("APP_SEED", "0"))
    steps = []
    started = time.perf_counter()
    for i, chunk in enumerate(chunks(ml.train, config.chunks)):
        client.post_events([event_json(r) for r in chunk])
        stats = client.wait_applied()
        steps.append(
            {
                "chunk": i,
                "events": len(chunk),
                "until": datetime.fromtimestamp(chunk[-1].time, UTC).date().isoformat(),
                "model_version": stats["model"]["version"],
                "users": stats["users"],
                "elapsed_s": round(time.perf_counter() - started, 2),
                "quality": quality.probe(database_url, seed=seed) if database_url else None,
            }
        )
        print(
            f"  chunk {i + 1}/{config.chunks} until {steps[-1]['until']}: "
            f"{stats['users']} users, model v{stats['model']['version']}, "
            f"{steps[-1]['elapsed_s']:.0f}s",
            flush=True,
        )
    return steps


def evaluate(
    client: Client,
    ml: MovieLens,
    config: Config,
    *,
    database_url: str | None,
    service: Service | None = None,
) -> dict[str, Any]:
    """Score the final streaming model; with config.recluster also the model that
    `python -m app recluster` trains from the same profiles (service restarted to evaluate it)."""
    settle = 3 * float(config.settings.get("APP_EVALUATE_INTERVAL_SECONDS", "1")) + 2
    started = time.perf_counter()
    final = client.wait_final_model(settle=settle)
    history = client.metrics_history()
    _phase("final model evaluated", started)
    ref = reference(ml, config, final["n_clusters"], database_url)
    _phase("offline reference", started)
    result = {
        "name": config.name,
        "settings": config.settings,
        "chunks": config.chunks,
        "tags": config.tags,
        "users": len(ref["users"]),
        "recall_popularity": ref["popularity"],
        "held_out_users": ref["held_out_users"],
        "profile_max_abs_diff": ref["profile_max_abs_diff"],
        "offline": {k: v for k, v in ref.items() if k not in _INTERNAL},
        "streaming": score(client, ml, final, ref),
        "history": history["snapshots"],
        "refits": history["refits"],
        "k_report": client.k_report(),
    }
    _phase("streaming model scored", started)
    result["recommend"] = served(client, ml, final, ref)
    _phase("recommendations scored", started)
    if service is not None:  # the same model and rankings, recommending from the one cluster
        flag = "APP_RECOMMEND_BY_INTERESTS"
        blended = service.env.get(flag, "true").lower() != "false"
        service.stop()
        service.env[flag] = str(not blended).lower()
        service.start()
        final = client.wait_final_model(settle=settle)
        result["recommend_single" if blended else "recommend_interests"] = served(
            client, ml, final, ref
        )
        service.stop()
        service.env[flag] = str(blended).lower()
        service.start()
        _phase("recommendations scored the other way", started)
    if config.drift and database_url:
        seed = int(config.settings.get("APP_SEED", "0"))
        result["drift"] = drift.run(
            client, ml, k=final["n_clusters"], seed=seed, database_url=database_url, settle=settle
        )
        result["drift_refits"] = client.metrics_history()["refits"]
        _phase("drift", started)
    if config.recluster and service is not None:
        # An operator's recluster, run while the service is stopped, so that the new generation
        # is fitted on a quiet database and the restarted worker evaluates it first thing.
        service.stop()
        output = service.run("recluster", "--k", str(final["n_clusters"]))
        service.start()
        final = client.wait_final_model(settle=settle)
        result["recluster"] = score(client, ml, final, ref) | {"output": output}
        _phase("recluster scored", started)
    return result


def _phase(what: str, started: float) -> None:
    print(f"  {what} (+{time.perf_counter() - started:.0f}s)", flush=True)


_INTERNAL = {
    "users",
    "labels",
    "popularity",
    "popularity_per_user",
    "held_out_users",
    "profile_max_abs_diff",
}


def reference(ml: MovieLens, config: Config, k: int, database_url: str | None) -> dict[str, Any]:
    """Exact KMeans(n_init=10) on the final profiles (the same math and embedder as the
    service), its recall lift, and how much both move with KMeans' random seed."""
    # Only the profile math is needed here; k comes from the service (APP_CLUSTERS may be auto).
    settings = load_settings(
        **setting_kwargs({n: v for n, v in config.settings.items() if n != "APP_CLUSTERS"})
    )
    vectors = offline.item_vectors(
        ml.item_texts(with_tags=config.tags), database_url, offline.backend_of(config.settings)
    )
    users, X = offline.profiles(ml.train, vectors, settings)
    diff = None
    if database_url:
        held = offline.service_profiles(database_url, X.shape[1])
        diff = float(max(np.abs(held[u] - x).max() for u, x in zip(users, X, strict=True)))
        X = np.stack([held[u] for u in users])  # exactly what the service's metrics saw
    seen, relevant = ml.seen(), ml.held_out_likes()
    popularity = recall_at_k(ml.train, seen, relevant, None)
    runs = []
    for seed in range(SEEDS):
        exact = offline.exact_kmeans(X, k, seed=seed)
        labels = dict(zip(users, (int(c) for c in exact.pop("labels")), strict=True))
        exact["recall"] = recall_at_k(ml.train, seen, relevant, labels)["recall"]
        exact["lift"] = exact["recall"] / popularity["recall"]
        runs.append((exact, labels))
    (ref, labels), lifts = runs[settings.seed % SEEDS], [r["lift"] for r, _ in runs]
    inertias = [r["inertia"] for r, _ in runs]
    return ref | {
        "users": users,
        "labels": labels,
        "popularity": popularity["recall"],
        "popularity_per_user": popularity["per_user"],
        "held_out_users": popularity["users"],
        "profile_max_abs_diff": diff,
        "lift_over_seeds": _spread(lifts),
        "inertia_over_seeds": _spread(inertias),
    }


def score(
    client: Client, ml: MovieLens, final: dict[str, Any], ref: dict[str, Any]
) -> dict[str, Any]:
    """The service's answers: each user's cluster over HTTP, its recall, its own metrics."""
    answers = {u: client.cluster(u) for u in ml.test}
    cluster_of = {u: a["cluster_id"] for u, a in answers.items() if a["status"] == "assigned"}
    ours = recall_at_k(ml.train, ml.seen(), ml.held_out_likes(), cluster_of)
    recall = ours["recall"]
    return {
        "model_version": final["model_version"],
        "assigned": len(cluster_of),
        "recall": recall,
        "lift": recall / ref["popularity"],
        "lift_ci95": lift_interval(ours["per_user"], ref["popularity_per_user"]),
        "inertia": final["inertia"],
        "inertia_ratio": final["inertia"] / ref["inertia"],
        "silhouette": final["silhouette"],
        "davies_bouldin": final["davies_bouldin"],
        "sizes": sorted(final["sizes"], reverse=True),
        "ari_vs_offline": _agreement(cluster_of, ref["labels"]),
    }


def served(
    client: Client, ml: MovieLens, final: dict[str, Any], ref: dict[str, Any]
) -> dict[str, Any]:
    """recall@20 of GET /v1/users/{id}/recommendations once the final version's rankings exist."""
    client.wait_rankings(next(iter(ml.test)), final["model_version"])
    ours = served_recall(client, ml.held_out_likes())
    return {
        "recall": ours["recall"],
        "lift": ours["recall"] / ref["popularity"],
        "lift_ci95": lift_interval(ours["per_user"], ref["popularity_per_user"]),
        "personal": ours["personal"],
        "users": ours["users"],
    }


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        name: float(f(a))
        for name, f in (("mean", np.mean), ("sd", np.std), ("min", np.min), ("max", np.max))
    }


def _agreement(a: dict[str, int], b: dict[str, int]) -> float | None:
    """Adjusted Rand index between the service's and the offline partition (label-free)."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return float(adjusted_rand_score([a[u] for u in common], [b[u] for u in common]))
