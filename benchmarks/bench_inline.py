"""GET /v1/users/{id}/cluster latency while the inline worker encodes, against idle.

    python -m benchmarks.bench_inline ../shared/data/movielens-ml-latest-small \
        --database-url sqlite:////tmp/interest-clusters-bench/inline/bench.db \
        --threads 0 --threads 2

For each `--threads` (APP_EMBEDDING_THREADS; 0 is the default bound, half the cores): a fresh
database with a trained population (bench_query's seed) and items whose texts are not encoded
yet (bench_encode's movie and 60-word texts); `python -m app serve` with the worker inline.
Rounds alternate: paced GETs for random users while the worker is idle, then events for a
share of the new items are posted and the same paced GETs run while the worker encodes them
(each round checks it was still encoding at the end), then the worker drains.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from app.db.models import Event
from benchmarks import bench_encode, common, seed
from benchmarks.loadgen import run_load
from benchmarks.service import AUTH, Client, Service


def pending(db) -> int:  # type: ignore[no-untyped-def]
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Event).where(Event.applied_at.is_(None))
            )
        )


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    titles, longs = bench_encode.texts(args.movielens, titles=20_000, long=args.long)
    texts = [*titles, *longs]
    rng = random.Random(0)
    paths = [("GET", f"/v1/users/u{rng.randrange(args.users)}/cluster", b"") for _ in range(10_000)]
    rows: list[list[object]] = []
    for threads in args.threads:
        db, _, _ = seed.trained_population(url, users=args.users, events_per_user=2)
        seed.items(db, {f"m{n}": t for n, t in enumerate(texts)})
        settings = {"worker": "inline", "embedding_threads": threads, "refit": False,
                    "consolidate": False, "embedding_cache_dir": args.cache_dir}  # fmt: skip
        if args.backend:
            settings["embedding_backend"] = args.backend
        idle: list[float] = []
        busy: list[float] = []
        with Service(url, log_dir=common.work_dir("inline"), **settings) as service:
            client = Client(service.url)
            assert client.cluster("u0")["status"] == "assigned"

            def paced() -> list[float]:
                return run_load(service.port, paths, concurrency=4, duration=args.seconds,
                                headers=AUTH, rate=args.rate).latencies  # fmt: skip

            paced()  # warm-up
            # Idle and encoding alternate, so the machine's background load hits both alike.
            for r in range(args.rounds):
                idle += paced()
                now = datetime.now(UTC).isoformat()
                client.post_events([
                    {"event_id": f"new-{n}", "user_id": f"u{n % args.users}", "type": "view",
                     "item_id": f"m{n}", "timestamp": now}
                    for n in range(r, len(texts), args.rounds)
                ])  # fmt: skip
                busy += paced()
                if not pending(db):
                    raise SystemExit("the worker finished encoding before the busy run ended: "
                                     "use more --long texts or fewer --seconds")  # fmt: skip
                deadline = time.monotonic() + 1200
                while pending(db) and time.monotonic() < deadline:
                    time.sleep(1)
        db.dispose()
        name = f"threads={threads or 'default'}"
        for q in (50, 99):
            a, b = (common.percentile(r, q) * 1000 for r in (idle, busy))
            rows.append([kind, f"{name}: p{q} idle / encoding (ms)", f"{a:.1f} / {b:.1f}",
                         "", ""])  # fmt: skip
            rows.append([kind, f"{name}: p{q} encoding / idle (x)", b / a, "<= 2",
                         common.verdict(b / a, 2, higher_is_better=False)])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("movielens", type=Path, help="the MovieLens ml-latest-small directory")
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--threads", type=int, action="append", help="default: 0 (the bound)")
    parser.add_argument("--backend", help="APP_EMBEDDING_BACKEND (default: the app's)")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="GETs/s, paced")
    parser.add_argument("--seconds", type=float, default=10.0, help="each run")
    parser.add_argument("--rounds", type=int, default=3, help="idle/encoding alternations")
    parser.add_argument("--long", type=int, default=2000, help="60-word texts among the items")
    parser.add_argument("--cache-dir", default="var/embedding-models")
    args = parser.parse_args()
    args.threads = args.threads or [0]
    common.report_per_database("Cluster queries while the inline worker encodes", args,
                               bench_database)  # fmt: skip


if __name__ == "__main__":
    main()
