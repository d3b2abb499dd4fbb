"""Evaluate the service on MovieLens (ml-latest-small), through its HTTP API.

    .venv/bin/python -m benchmarks.evaluate_movielens /work/shared/data/movielens-ml-latest-small
    .venv/bin/python -m benchmarks.evaluate_movielens DATA_DIR --clusters 4,8,16,32 \
        --half-life-days 30,365 --no-plots
    .venv/bin/python -m benchmarks.evaluate_movielens DATA_DIR --url http://127.0.0.1:8000 \
        --database-url sqlite:////path/app.db   # a running service, started on an empty database

Each configuration starts `python -m app serve` on a fresh SQLite file under benchmarks/out/
whose embedding cache already holds the movie texts' vectors (seed.warm_cache: encoded once per
machine), replays the history through POST /v1/items and /v1/events in time order, waits for
the final model, and scores: recall@20 of cluster-popularity recommendations (cluster from GET
/v1/users/{id}/cluster) vs global popularity vs exact KMeans(n_init=10) on the same profiles;
inertia, silhouette and Davies-Bouldin vs GET /v1/clusters/metrics; the dynamics from
/v1/clusters/metrics/history. Results: benchmarks/out/results/NAME.json; plots: benchmarks/plots/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from app.db.session import Database
from benchmarks import common, movielens, seed
from benchmarks.evaluation import offline
from benchmarks.evaluation.run import SERVICE_SETTINGS, Config, evaluate, replay, setting_kwargs
from benchmarks.movielens import MovieLens
from benchmarks.service import Client, Service

HERE = Path(__file__).resolve().parent


def main() -> None:
    args = _parser().parse_args()
    if args.quality:
        from benchmarks.evaluation import plots

        runs = [json.loads((args.out / "results" / f"{n}.json").read_text()) for n in args.quality]
        print(f"plot: {plots.quality(runs, args.plots, runs[0]['name'].rsplit('-', 1)[0])}")
        return
    if args.compare:
        from benchmarks.evaluation import plots

        saved = [
            json.loads(p.read_text()) for p in sorted((args.out / "results").glob("k*-hl*.json"))
        ]
        grid = [
            r
            for r in saved
            if r["name"] == f"k{r['settings']['APP_CLUSTERS']}-hl"
            f"{r['settings']['APP_PROFILE_HALF_LIFE_DAYS']}"
        ]
        print(table(grid))
        print(f"plot: {plots.comparison(grid, args.plots)}")
        main_run = json.loads((args.out / "results" / f"{args.name or 'k8-hl30'}.json").read_text())
        for path in plots.dynamics(main_run, args.plots):
            print(f"plot: {path}")
        return
    ml = movielens.load(args.data_dir)
    print(
        f"MovieLens: {len(ml.titles)} movies, {len(ml.train)} history ratings, "
        f"{sum(map(len, ml.test.values()))} held out, {len(ml.test)} users",
        flush=True,
    )
    extra = dict(kv.split("=", 1) for kv in args.set)
    out = args.out
    (out / "results").mkdir(parents=True, exist_ok=True)
    results = []
    for k in args.clusters:
        for half_life in args.half_life_days:
            settings = SERVICE_SETTINGS | extra
            settings |= {"APP_CLUSTERS": str(k), "APP_PROFILE_HALF_LIFE_DAYS": half_life}
            config = Config(
                settings=settings,
                chunks=args.chunks,
                tags=args.tags,
                recluster=args.recluster,
                drift=args.drift,
            )
            name = args.name or config.name
            print(f"== {name}: {settings}", flush=True)
            started = time.perf_counter()
            if args.url:
                client = Client(args.url, args.api_key)
                steps = replay(client, ml, config, args.database_url)
                result = evaluate(client, ml, config, database_url=args.database_url)
            else:
                steps, result = run_service(out / "runs" / name, ml, config)
            result |= {"name": name, "steps": steps, "seconds": time.perf_counter() - started}
            (out / "results" / f"{name}.json").write_text(json.dumps(result, indent=1))
            print(summary(result), flush=True)
            results.append(result)
    if not args.no_plots:
        from benchmarks.evaluation import plots

        for path in plots.dynamics(results[0], args.plots):
            print(f"plot: {path}")
        print(f"plot: {plots.quality(results[:1], args.plots, results[0]['name'])}")


def run_service(
    run_dir: Path, ml: MovieLens, config: Config
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A fresh service on its own SQLite file in run_dir: replay, then score."""
    url = warm_database(
        run_dir, ml.item_texts(with_tags=config.tags), offline.backend_of(config.settings)
    )
    with Service(url, log_dir=run_dir, worker="inline", **setting_kwargs(config.settings)) as svc:
        client = Client(svc.url)
        steps = replay(client, ml, config, url)
        return steps, evaluate(client, ml, config, database_url=url, service=svc)


def warm_database(run_dir: Path, texts: dict[str, str], backend: str | None = None) -> str:
    """A fresh, migrated SQLite file in an emptied run_dir whose embedding cache already holds
    the texts' vectors (on the service's embedding backend); its URL. The subject is the
    clustering, not encoding."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    url = common.fresh_database(f"sqlite:///{run_dir / 'app.db'}")
    db = Database(url)
    try:
        model = offline.embedder(backend or offline.backend_of({}))
        seed.warm_cache(db, model, list(texts.values()))
    finally:
        db.dispose()
    return url


def summary(r: dict) -> str:  # type: ignore[type-arg]
    o, spread = r["offline"], r["offline"]["lift_over_seeds"]
    lines = [
        f"-- {r['name']} ({r['seconds']:.0f}s, {r['users']} users, "
        f"{r['held_out_users']} with held-out likes; profiles equal offline to "
        f"{r['profile_max_abs_diff']})",
        f"popularity recall@20 {r['recall_popularity']:.4f}",
        f"exact KMeans  recall@20 {o['recall']:.4f} ({o['lift']:.2f}x; over 10 seeds "
        f"{spread['mean']:.2f} +- {spread['sd']:.2f}x)  inertia {o['inertia']:.2f}  "
        f"silhouette {o['silhouette']:.4f}  DB {o['davies_bouldin']:.3f}",
    ]
    for label in ("streaming", "recluster"):
        s = r.get(label)
        if s is None:
            continue
        lines.append(
            f"{label:<13} recall@20 {s['recall']:.4f} ({s['lift']:.2f}x, 95% CI "
            f"{s['lift_ci95'][0]:.2f}-{s['lift_ci95'][1]:.2f})  inertia "
            f"{s['inertia']:.2f} (x{s['inertia_ratio']:.3f})  silhouette {_f(s['silhouette'])}  "
            f"DB {_f(s['davies_bouldin'])}  ARI {_f(s['ari_vs_offline'])}  v{s['model_version']}"
        )
    for label in ("recommend", "recommend_single", "recommend_interests"):
        if (s := r.get(label)) is not None:
            lines.append(
                f"{label:<19} recall@20 {s['recall']:.4f} ({s['lift']:.2f}x, 95% CI "
                f"{s['lift_ci95'][0]:.2f}-{s['lift_ci95'][1]:.2f}) via GET .../recommendations"
            )
    refits = r.get("refits", [])
    adopted = sum(1 for x in refits if x["adopted"])
    lines.append(
        f"refits: {len(refits)} tried, {adopted} adopted; k report: "
        f"{(r.get('k_report') or {}).get('reason')}"
    )
    if r.get("drift"):
        last = r["drift"]["steps"][-1]
        lines.append(
            f"drift: {r['drift']['switched']} switched users found in their new family's "
            f"cluster: service {last['service_found']:.3f}, exact {last['exact_found']:.3f}"
        )
    return "\n".join(lines)


def table(results: list[dict]) -> str:  # type: ignore[type-arg]
    """A markdown table of saved runs: k, half-life, recall lifts, inertia ratio, quality."""
    head = (
        "| k | half-life (days) | service lift | exact KMeans lift (seed 0; 10 seeds) | "
        "inertia ratio | silhouette service / exact | DB service / exact | "
        "after recluster: lift, inertia ratio |\n|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for r in sorted(results, key=_grid_key):
        s, o, rc = r["streaming"], r["offline"], r.get("recluster")
        spread = o["lift_over_seeds"]
        after = f"{rc['lift']:.2f}x, {rc['inertia_ratio']:.3f}" if rc else "-"
        rows.append(
            f"| {r['settings']['APP_CLUSTERS']} | {r['settings']['APP_PROFILE_HALF_LIFE_DAYS']} | "
            f"{s['lift']:.2f}x | {o['lift']:.2f}x; {spread['mean']:.2f} ± {spread['sd']:.2f}x | "
            f"{s['inertia_ratio']:.3f} | {_f(s['silhouette'], 3)} / {o['silhouette']:.3f} | "
            f"{_f(s['davies_bouldin'], 2)} / {o['davies_bouldin']:.2f} | {after} |"
        )
    return "\n".join([head, *rows])


def _grid_key(r: dict) -> tuple[int, float]:  # type: ignore[type-arg]
    k = r["settings"]["APP_CLUSTERS"]
    return int(k) if k.isdigit() else 0, float(r["settings"]["APP_PROFILE_HALF_LIFE_DAYS"])


def _f(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", type=Path, help="the ml-latest-small folder")
    p.add_argument(
        "--clusters", type=lambda s: s.split(","), default=["8"], help="k values (4,8,16) or auto"
    )
    p.add_argument("--half-life-days", type=lambda s: s.split(","), default=["30"])
    p.add_argument("--chunks", type=int, default=40, help="time-ordered replay steps")
    p.add_argument("--tags", action="store_true", help="add history tags to item texts")
    p.add_argument(
        "--recluster", action="store_true", help="then `python -m app recluster` and score again"
    )
    p.add_argument("--drift", action="store_true", help="then users switch genre family (drift.py)")
    p.add_argument("--set", action="append", default=[], help="APP_X=VALUE for the service")
    p.add_argument("--name", help="result name (default from k and half-life)")
    p.add_argument("--url", help="an already running service on an empty database")
    p.add_argument("--database-url", help="its database, to read its profiles and embeddings")
    p.add_argument("--api-key", help="a key with ingest+read scopes, if the service needs one")
    p.add_argument("--out", type=Path, default=HERE / "out")
    p.add_argument("--plots", type=Path, default=HERE / "plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--quality",
        type=lambda s: s.split(","),
        help="only plot quality over versions of these saved runs (NAME,NAME,...)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="only tabulate and plot saved results (dynamics of --name, default k8-hl30)",
    )
    return p


if __name__ == "__main__":
    main()
