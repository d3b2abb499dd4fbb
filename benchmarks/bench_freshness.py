"""Freshness: under a sustained event rate, how long from an event's 202 until
GET /v1/users/{id}/cluster reflects it.

    python -m benchmarks.bench_freshness ../shared/data/movielens-ml-latest-small \
        --database-url sqlite:////tmp/interest-clusters-bench/freshness/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_freshness

Set-up, straight into the database: the MovieLens movies as items (movielens.py) with their
vectors already in the embedding cache (steady state: the catalogue is known), and S seed users
with E unapplied events each. `python -m app serve` with the worker inline (or `--worker
process`: API with APP_WORKER=off plus `python -m app worker`) then folds them and fits the
first model (APP_MIN_USERS_FIRST_FIT lowered to fit S). Load, from another process: R events/s
in POSTs of B events for random users on a fixed schedule; meanwhile probes: a few times a
second (at most 4 at once), one event for an idle probe user (a seeded user no other event
goes to), then GET .../cluster every 50 ms until `profile.events` counts it and `status` is
`assigned`.
Freshness = time from the probe's 202 to that answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from app.config import load_settings
from app.db.session import Database
from app.embedding.embedder import configured_embedder
from benchmarks import common, movielens, seed
from benchmarks.loadgen import HttpConnection
from benchmarks.service import AUTH, Client, Service

TYPES = ["view", "click", "like", "dislike", "share"]
POLL = 0.05  # the polling is load on the API too: 20 Hz per probe, at most MAX_PROBES at once
MAX_PROBES = 4
GIVE_UP = 30.0


async def _load(port: int, items: list[str], args: dict) -> dict:
    rng = random.Random(1)
    probes, per_user = args["probes"], args["events_per_user"]
    seen = dict.fromkeys(range(probes), per_user)  # probe user -> events it has
    idle = list(range(probes))
    freshness: list[float] = []
    missed = 0
    sent = acked = 0
    started = time.perf_counter()
    end = started + args["seconds"]
    period = args["batch"] / args["rate"]
    slots = asyncio.Queue()  # type: ignore[var-annotated]

    def event(user: int) -> dict:
        return {"user_id": f"u{user}", "type": rng.choice(TYPES), "item_id": rng.choice(items)}

    async def scheduler() -> None:
        n = 0
        while (slot := started + n * period) < end:
            await asyncio.sleep(max(0.0, slot - time.perf_counter()))
            slots.put_nowait(slot)
            n += 1
        for _ in range(args["connections"]):
            slots.put_nowait(None)

    async def sender() -> None:
        nonlocal sent, acked
        conn = HttpConnection("127.0.0.1", port, AUTH)
        while (await slots.get()) is not None:
            users = [rng.randrange(probes, args["users"]) for _ in range(args["batch"])]
            body = json.dumps({"events": [event(u) for u in users]}).encode()
            sent += len(users)
            status, _ = await conn.request("POST", "/v1/events", body)
            acked += len(users) if status == 202 else 0
        await conn.close()

    async def probe(user: int) -> None:
        nonlocal missed
        conn = HttpConnection("127.0.0.1", port, AUTH)
        body = json.dumps({"events": [event(user)]}).encode()
        status, _ = await conn.request("POST", "/v1/events", body)
        acked_at = time.perf_counter()
        assert status == 202, status
        seen[user] += 1
        while time.perf_counter() - acked_at < GIVE_UP:
            status, raw = await conn.request("GET", f"/v1/users/u{user}/cluster")
            answer = json.loads(raw)
            if answer["status"] == "assigned" and answer["profile"]["events"] >= seen[user]:
                freshness.append(time.perf_counter() - acked_at)
                break
            await asyncio.sleep(POLL)
        else:
            missed += 1
        await conn.close()
        idle.append(user)

    async def prober() -> None:
        tasks = []
        while time.perf_counter() < end:
            if idle and len([t for t in tasks if not t.done()]) < MAX_PROBES:
                tasks.append(asyncio.create_task(probe(idle.pop(rng.randrange(len(idle))))))
            await asyncio.sleep(1 / args["probe_rate"])
        await asyncio.gather(*tasks)

    await asyncio.gather(scheduler(), prober(), *(sender() for _ in range(args["connections"])))
    return {
        "sent": sent,
        "acked": acked,
        "send_seconds": args["seconds"],
        "freshness": freshness,
        "missed": missed,
    }


def _run(port: int, items: list[str], args: dict, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import uvloop

    queue.put(uvloop.run(_load(port, items, args)))


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    texts = movielens.item_texts(args.movielens)
    common.fresh_database(url)
    db = Database(url)
    seed.items(db, {f"m{m}": t for m, t in texts.items()})
    # The backend the service's workers run (APP_EMBEDDING_BACKEND): its cache key.
    seed.warm_cache(db, configured_embedder(load_settings()), list(texts.values()))
    rng = random.Random(0)
    items = [f"m{m}" for m in texts]
    now = datetime.now(UTC)
    seed.events(
        db,
        (
            {"event_id": f"s{u}-{i}", "user_id": f"u{u}", "type": rng.choice(TYPES),
             "item_id": rng.choice(items), "occurred_at": now}
            for u in range(args.seed_users)
            for i in range(args.events_per_user)
        ),
    )  # fmt: skip
    db.dispose()

    settings = {"min_users_first_fit": min(1000, args.seed_users)}
    log_dir = common.work_dir("freshness")
    inline = args.worker == "inline"
    with (
        Service(url, log_dir=log_dir, worker="inline" if inline else "off", **settings) as server,
        server.worker() if not inline else contextlib.nullcontext() as worker_proc,
    ):
        port = server.port
        client = Client(server.url)
        setup = time.perf_counter()
        client.wait_model(timeout=1800)
        setup = time.perf_counter() - setup
        load_args = {
            "users": args.seed_users * 2,  # half of the load goes to users not seen yet
            "probes": args.probes,
            "events_per_user": args.events_per_user,
            "rate": args.rate,
            "batch": args.batch,
            "seconds": args.seconds,
            "connections": args.connections,
            "probe_rate": args.probe_rate,
        }
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(port, items, load_args, queue), name="loadgen")
        proc.start()
        result = queue.get()
        proc.join()
        drained = time.perf_counter()
        final = client.wait_model(timeout=600)
        drained = time.perf_counter() - drained
        pid = server.pid if inline else worker_proc.pid
        rss = common.rss_peak_mb(pid)

    f = result["freshness"]
    rate = result["acked"] / result["send_seconds"]
    p50, p99 = common.percentile(f, 50), common.percentile(f, 99)
    where = "API process (worker inline)" if inline else "worker process"
    return [
        [kind, f"set-up: {args.seed_users:,} users x {args.events_per_user} events folded, "
         "first fit (s)", setup, "", ""],
        [kind, f"load: events/s accepted (target rate {args.rate:,.0f}, {args.batch}/POST)",
         rate, "", ""],
        [kind, f"probes answered / missed (> {GIVE_UP:.0f} s)", f"{len(f)} / {result['missed']}",
         "", ""],
        [kind, "freshness p50 (s)", p50, "<= 1", common.verdict(p50, 1, higher_is_better=False)],
        [kind, "freshness p90 (s)", common.percentile(f, 90), "", ""],
        [kind, "freshness p99 (s)", p99, "<= 3", common.verdict(p99, 3, higher_is_better=False)],
        [kind, "freshness max (s)", max(f) if f else float("nan"), "", ""],
        [kind, "backlog drained after the load (s)", drained, "", ""],
        [kind, f"model version at the end / peak RSS of the {where} (MiB)",
         f"{final['model']['version']} / {rss:,.0f}", "", ""],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("movielens", type=Path, help="the MovieLens ml-latest-small directory")
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s")
    parser.add_argument("--batch", type=int, default=10, help="events per POST")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--seed-users", type=int, default=2000)
    parser.add_argument("--events-per-user", type=int, default=10)
    parser.add_argument("--probes", type=int, default=100, help="probe users (seeded)")
    parser.add_argument("--probe-rate", type=float, default=5.0, help="probes started per s")
    parser.add_argument("--connections", type=int, default=8, help="load connections")
    parser.add_argument("--worker", choices=["inline", "process"], default="inline")
    args = parser.parse_args()
    common.report_per_database("Freshness", args, bench_database)


if __name__ == "__main__":
    main()
