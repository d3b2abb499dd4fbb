"""The dashboard's data endpoints with many users: latency at a fixed rate, and the worker's
cost of one map.

    python -m benchmarks.bench_dashboard --users 100000 \
        --database-url sqlite:////tmp/interest-clusters-bench/dashboard/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_dashboard

Seeding goes straight into the database (the subject is reading): N `user_profile` rows with
clustered random unit vectors, E applied `event` rows per user, one checkpoint trained by
`Trainer.step`, one evaluation (`evaluate`) and its map (`record_map`, timed: the worker pays
it once per evaluated version), then the history the quality charts read: V evaluated versions
in all (maps pruned as the worker prunes them). Then `python -m app serve` (APP_WORKER=off)
answers each endpoint on a fixed schedule
of R requests/s (latency from each request's slot, so a server that falls behind is charged
for the queue). GET /healthz of the same server, closed loop, is this client's trivial limit.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import insert

from app.config import load_settings
from app.dashboard import service as dashboard_service
from app.dashboard.router import PIPELINE_FRESH_SECONDS
from app.db.models import ClusterMap, ClusterMetrics
from app.db.session import Database
from app.embedding.embedder import DEFAULT_MODEL_ID
from app.model import cluster_map
from app.model.evaluation import evaluate
from benchmarks import common, seed
from benchmarks.loadgen import run_load
from benchmarks.service import AUTH, Service

ENDPOINTS = ["/v1/dashboard/pipeline", "/v1/dashboard/map", "/v1/dashboard/versions",
             "/v1/clusters"]  # fmt: skip


def seed_database(url: str, args: argparse.Namespace) -> float:
    """Seed, and return the seconds one `record_map` took."""
    db, settings, trainer = seed.trained_population(
        url, users=args.users, events_per_user=args.events_per_user
    )
    snapshot, _ = evaluate(
        db, trainer.model, version=1, settings=settings, embedding_model=DEFAULT_MODEL_ID
    )
    started = time.perf_counter()
    cluster_map.record_map(db, trainer.model, snapshot)
    map_seconds = time.perf_counter() - started
    with db.read() as session:
        first_map = session.get(ClusterMap, 1)
        assert first_map is not None
        template = {c.name: getattr(first_map, c.name) for c in ClusterMap.__table__.columns}
    history = {c.name: getattr(snapshot, c.name) for c in ClusterMetrics.__table__.columns}
    del history["id"]
    versions = range(2, args.versions + 1)
    kept = args.versions - cluster_map.MAP_KEEP
    with db.write() as session:  # the later versions the quality charts read, pruned as usual
        session.execute(insert(ClusterMetrics), [{**history, "model_version": v} for v in versions])
        session.execute(
            insert(ClusterMap),
            [
                {**template, "model_version": v, "points": template["points"] if v > kept else None}
                for v in versions
            ],
        )
    db.dispose()
    return map_seconds


def seeded(url: str, args: argparse.Namespace) -> bool:
    """Whether the database holds this run's seed already (--reuse)."""
    from sqlalchemy import func, select

    from app.db.models import UserProfile

    db = Database(url)
    try:
        with db.read() as session:
            users = session.scalar(select(func.count()).select_from(UserProfile))
            maps = session.scalar(select(func.count()).select_from(ClusterMap))
        return users == args.users and maps == args.versions
    except Exception:
        return False
    finally:
        db.dispose()


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    reuse = args.reuse and seeded(url, args)
    map_seconds = "(reused seed)" if reuse else seed_database(url, args)
    db = Database(url)
    settings = load_settings(database_url=url, worker="off", api_keys={})
    dashboard_service.pipeline(db, settings=settings)  # warm
    started = time.perf_counter()
    dashboard_service.pipeline(db, settings=settings)
    pipeline_seconds = time.perf_counter() - started
    db.dispose()
    rows: list[list[object]] = [
        [kind, f"record_map at {args.users:,} users (s; the worker, once per evaluated version)",
         map_seconds, "", ""],
        [kind, f"one pipeline read at {args.users:,} users (s; at most once per "
         f"{PIPELINE_FRESH_SECONDS:g} s per API process while a page polls)",
         pipeline_seconds, "", ""],
    ]  # fmt: skip
    with Service(url, log_dir=common.work_dir("dashboard"), worker="off") as service:
        port = service.port
        trivial = run_load(
            port, [("GET", "/healthz", b"")], concurrency=args.concurrency,
            duration=args.seconds, headers=AUTH,
        )  # fmt: skip
        for path in [*ENDPOINTS, "/healthz"]:  # /healthz paced: this machine's latency floor
            requests = [("GET", path, b"")]
            run_load(port, requests, concurrency=4, duration=1, headers=AUTH)  # warm-up
            paced = run_load(
                port, requests, concurrency=args.concurrency, duration=args.seconds,
                headers=AUTH, rate=args.rate,
            )  # fmt: skip
            if set(paced.statuses) != {200}:
                raise SystemExit(f"{path}: unexpected statuses {paced.statuses}")
            p50, p99 = (common.percentile(paced.latencies, q) * 1000 for q in (50, 99))
            target = path != "/healthz"
            rows.append(
                [kind, f"{path} paced at {args.rate:,.0f}/s: p50 / p99 (ms)",
                 f"{p50:.1f} / {p99:.1f}", "p99 <= 100" if target else "",
                 common.verdict(p99, 100, higher_is_better=False) if target else ""]
            )  # fmt: skip
    rows.append([kind, f"GET /healthz, c={args.concurrency} (req/s, the trivial limit)",
                 trivial.rate, "", ""])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=int, default=5)
    parser.add_argument("--versions", type=int, default=200, help="evaluated versions stored")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s per endpoint")
    parser.add_argument("--seconds", type=float, default=10.0, help="each run")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    args = parser.parse_args()
    common.report_per_database("Dashboard data endpoints", args, bench_database)


if __name__ == "__main__":
    main()
