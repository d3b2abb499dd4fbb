"""Scale: U users / N events through the HTTP API and a separate worker process: time to ingest,
time until every event is folded and every profile trained, and the workers' peak memory.

    python -m benchmarks.bench_scale ../shared/data/movielens-ml-latest-small \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_scale \
        --users 100000 --events 1000000

The issue's size is --users 1000000 --events 10000000; time grows linearly in events (every
stage is per event or per changed profile), so a smaller run extrapolates; run two sizes to
see memory's trend. Items: the MovieLens movies (~9.7k texts, a bounded vocabulary;
movielens.py), POSTed through the API; their vectors are put in the embedding cache first unless
--cold-cache (encoding 9.7k texts once is a fixed cost, measured by bench_profile). Events:
uniformly random users and items, POSTed in batches of 1000 by another process while
--workers `python -m app worker` processes (the API has APP_WORKER=off) fold, and the one
holding the trainer lock trains. Peak memory is each process's VmHWM from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from app.config import load_settings
from app.db.models import Event, UserProfile
from app.db.session import Database
from app.embedding.embedder import configured_embedder
from benchmarks import common, movielens, seed
from benchmarks.loadgen import HttpConnection
from benchmarks.service import AUTH, Client, Service

TYPES = ["view", "click", "like", "dislike", "share", "purchase"]
SAMPLE_SECONDS = 10  # progress samples: the finish times are known to within this


async def _ingest(port: int, items: list[str], args: dict) -> float:
    """POST args['events'] random events in batches; returns the seconds it took."""
    batches = args["events"] // args["batch"]
    position = 0
    started = time.perf_counter()

    async def connection(index: int) -> None:
        nonlocal position
        rng = random.Random(index)
        conn = HttpConnection("127.0.0.1", port, AUTH)
        while position < batches:
            position += 1
            events = [
                {"user_id": f"u{rng.randrange(args['users'])}", "type": rng.choice(TYPES),
                 "item_id": rng.choice(items)}
                for _ in range(args["batch"])
            ]  # fmt: skip
            status, body = await conn.request(
                "POST", "/v1/events", json.dumps({"events": events}).encode()
            )
            if status != 202:
                raise RuntimeError(f"POST /v1/events: {status} {body[:200]!r}")
        await conn.close()

    await asyncio.gather(*(connection(i) for i in range(args["connections"])))
    return time.perf_counter() - started


def _run(port: int, items: list[str], args: dict, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import uvloop

    queue.put(uvloop.run(_ingest(port, items, args)))


def progress(db: Database) -> tuple[int, int]:
    """(pending events, untrained profiles)."""
    with db.read() as session:
        pending = session.scalar(select(func.count()).where(Event.applied_at.is_(None)))
        untrained = session.scalar(
            select(func.count()).where(UserProfile.version > UserProfile.trained_version)
        )
    return pending or 0, untrained or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("movielens", type=Path, help="the MovieLens ml-latest-small directory")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--cold-cache", action="store_true")
    parser.add_argument("--timeout", type=float, default=7200, help="give up after (s)")
    args = parser.parse_args()
    print(common.machine())
    print("command:", common.command_line())

    url = args.database_url
    texts = movielens.item_texts(args.movielens)
    common.fresh_database(url)
    db = Database(url)
    if not args.cold_cache:
        # The backend the service's workers run (APP_EMBEDDING_BACKEND): its cache key.
        seed.warm_cache(db, configured_embedder(load_settings()), list(texts.values()))
    log_dir = common.work_dir("scale")
    samples: list[tuple[float, int, int, float]] = []  # t, pending, untrained, worker RSS MiB
    with Service(url, log_dir=log_dir, worker="off") as server, contextlib.ExitStack() as stack:
        workers = [stack.enter_context(server.worker()) for _ in range(args.workers)]
        port = server.port
        Client(server.url).post_items({f"m{m}": t for m, t in texts.items()})
        started = time.perf_counter()
        stop = threading.Event()

        def monitor() -> None:
            # Every SAMPLE_SECONDS, not more often: counting millions of pending events takes
            # a second of the machine the service runs on.
            while not stop.wait(SAMPLE_SECONDS):
                pending, untrained = progress(db)
                rss = max(common.rss_mb(w.pid) for w in workers)
                samples.append((time.perf_counter() - started, pending, untrained, rss))
                print(f"  {samples[-1][0]:7.0f} s  pending {pending:>10,}  untrained "
                      f"{untrained:>9,}  worker RSS {rss:,.0f} MiB (max)", flush=True)  # fmt: skip

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        load_args = {k: getattr(args, k) for k in ("users", "events", "batch", "connections")}
        items = [f"m{m}" for m in texts]
        proc = ctx.Process(target=_run, args=(port, items, load_args, queue), name="loadgen")
        proc.start()
        ingest_seconds = queue.get()
        proc.join()
        applied_at = trained_at = None
        seen = 0
        while time.perf_counter() - started < args.timeout:
            time.sleep(1)
            if len(samples) == seen:
                continue
            seen = len(samples)
            now, pending, untrained, _ = samples[-1]
            if pending == 0 and applied_at is None:
                applied_at = now
            if applied_at is not None and untrained == 0:
                trained_at = now
                break
        stop.set()
        watcher.join()
        _, pending, untrained, _ = samples[-1] if samples else (0, -1, -1, 0)
        worker_peaks = [common.rss_peak_mb(w.pid) for w in workers]
        worker_peak = max(worker_peaks)
        api_peak = common.rss_peak_mb(server.pid)
    with db.read() as session:
        users = session.scalar(select(func.count()).select_from(UserProfile))
    db.dispose()
    if trained_at is None:
        # Report how far it got: the samples above show the rate, these the state at the end.
        raise SystemExit(
            f"not done within {args.timeout:.0f} s: ingest took {ingest_seconds:.0f} s; at the "
            f"end {pending:,} events pending, {untrained:,} profiles untrained, {users:,} "
            f"profiles; worker peak RSS {worker_peak:,.0f} MiB, API {api_peak:,.0f} MiB"
        )

    scale = 10_000_000 / args.events
    rows = [
        ["events / users (profiles at the end)", f"{args.events:,} / {users:,}", "", ""],
        ["ingest over HTTP (s)", ingest_seconds, "", ""],
        ["ingest rate (events/s)", args.events / ingest_seconds, "", ""],
        ["all events folded, from the first POST (s)", applied_at, "", ""],
        ["all profiles trained, from the first POST (s)", trained_at, "", ""],
        ["end-to-end rate (events/s)", args.events / trained_at, "", ""],
        ["worker processes / peak RSS of each (MiB)",
         f"{args.workers} / " + ", ".join(f"{p:,.0f}" for p in worker_peaks), "", ""],
        ["worker peak RSS, the largest (MiB)", worker_peak, "<= 1,536",
         common.verdict(worker_peak, 1536, higher_is_better=False)],
        ["API peak RSS (MiB)", api_peak, "<= 1,024",
         common.verdict(api_peak, 1024, higher_is_better=False)],
        [f"extrapolated to 10M events, linear x{scale:g} (h)", trained_at * scale / 3600, "", ""],
    ]  # fmt: skip
    print(common.table("Scale", ["measure", "value", "target", ""], rows))


if __name__ == "__main__":
    main()
