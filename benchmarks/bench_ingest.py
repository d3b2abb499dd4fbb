"""Ingest: POST /v1/events against a raw SQLAlchemy bulk insert of the same rows, and
single-event requests against a trivial endpoint of the same server.

    python -m benchmarks.bench_ingest \
        --database-url sqlite:////tmp/interest-clusters-bench/ingest/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_ingest

Each database is emptied and migrated first (PostgreSQL: create it with `createdb`).
The API runs as `python -m app serve` with APP_WORKER=off; the client is another process.
Last, availability: the same batch load for `--encode-seconds` against a server whose inline
worker is cold-encoding `--encode-texts` new texts of ~230 characters (written straight into
the database once the server is ready): batch latency p99 and every answer that was not 202.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from benchmarks import common
from benchmarks.loadgen import run_load
from benchmarks.service import AUTH, Service

TYPES = ["view", "click", "like", "dislike", "share", "purchase"]


def make_events(prefix: str, n: int, *, users: int, items: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "user_id": f"u{rng.randrange(users)}",
            "type": rng.choice(TYPES),
            "item_id": f"m{rng.randrange(items)}",
            "timestamp": (base + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


def as_requests(events: list[dict], batch: int) -> list[tuple[str, str, bytes]]:
    return [
        ("POST", "/v1/events", json.dumps({"events": events[i : i + batch]}).encode())
        for i in range(0, len(events), batch)
    ]


def as_rows(events: list[dict], now: datetime) -> list[dict]:
    """What the service stores for each event, ready for a bulk insert."""
    return [
        {
            "event_id": e["event_id"],
            "user_id": e["user_id"],
            "type": e["type"],
            "item_id": e["item_id"],
            "text": None,
            "weight": None,
            "occurred_at": datetime.fromisoformat(e["timestamp"]),
            "received_at": now,
        }
        for e in events
    ]


def raw_insert(url: str, events: list[dict], batch: int) -> float:
    """Events/s of a Core `INSERT` executemany (no ORM, no RETURNING), one commit per batch."""
    from app.db.models import Event
    from app.db.session import Database

    db = Database(url)
    now = datetime.now(UTC)
    rows = as_rows(events, now)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        with db.write() as session:
            session.connection().execute(insert(Event.__table__), rows[i : i + batch])
    seconds = time.perf_counter() - started
    db.dispose()
    return len(rows) / seconds


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    log_dir = common.work_dir("ingest")
    if args.only_during_encode:
        return during_encode(url, args, kind=kind, log_dir=log_dir)
    events = make_events("e", args.events, users=args.users, items=args.items, seed=1)
    warm = make_events("w", 5 * args.batch, users=args.users, items=args.items, seed=2)

    common.fresh_database(url)
    raw_insert(url, warm, args.batch)
    raw = raw_insert(url, events, args.batch)

    common.fresh_database(url)
    rows: list[list[object]] = []
    with Service(url, log_dir=log_dir, worker="off") as service:
        port = service.port
        run_load(port, as_requests(warm, args.batch), concurrency=2, headers=AUTH)
        load = run_load(
            port,
            as_requests(events, args.batch),
            concurrency=args.concurrency,
            headers=AUTH,
        )
        check(load.statuses, 202)
        http = args.events / load.seconds
        target = 20_000 if kind == "sqlite" else 10_000
        rows.append(
            [
                kind,
                f"POST /v1/events, {args.batch}/request, c={args.concurrency}",
                http,
                f">= {target:,}",
                common.verdict(http, target),
            ]
        )
        rows.append([kind, "raw SQLAlchemy bulk insert, same rows", raw, "", ""])
        ratio = 100 * http / raw
        rows.append([kind, "HTTP / raw (%)", ratio, ">= 70", common.verdict(ratio, 70)])
        p99 = common.percentile(load.latencies, 99) * 1000
        rows.append(
            [
                kind,
                "batch latency p50 / p99 (ms)",
                f"{common.percentile(load.latencies, 50) * 1000:.0f} / {p99:.0f}",
                "",
                "",
            ]
        )

        singles = make_events("s", 200_000, users=args.users, items=args.items, seed=3)
        single = run_load(
            port,
            as_requests(singles, 1),
            concurrency=16,
            duration=args.seconds,
            headers=AUTH,
        )
        check(single.statuses, 202)
        trivial = run_load(
            port,
            [("GET", "/healthz", b"")],
            concurrency=16,
            duration=args.seconds,
            headers=AUTH,
        )
        check(trivial.statuses, 200)
        rows.append([kind, "POST /v1/events, 1 event/request, c=16 (req/s)", single.rate, "", ""])
        rows.append([kind, "GET /healthz, c=16 (req/s)", trivial.rate, "", ""])
        ratio = 100 * single.rate / trivial.rate
        rows.append([kind, "single event / trivial (%)", ratio, ">= 50", common.verdict(ratio, 50)])
        rows.append(
            [
                kind,
                "single event latency p50 / p99 (ms)",
                f"{common.percentile(single.latencies, 50) * 1000:.1f} / "
                f"{common.percentile(single.latencies, 99) * 1000:.1f}",
                "",
                "",
            ]
        )
    if args.encode_texts:
        rows.extend(during_encode(url, args, kind=kind, log_dir=log_dir))
    return rows


WORDS = [
    "slow",
    "patient",
    "film",
    "lighthouse",
    "keeper",
    "letters",
    "daughter",
    "storm",
    "photography",
    "ending",
    "quiet",
    "remarkable",
    "score",
    "actor",
    "director",
    "novel",
    "sequel",
    "chapter",
    "memory",
    "winter",
    "harbour",
    "village",
    "train",
    "journey",
    "mountain",
    "river",
    "city",
    "night",
    "music",
    "dance",
    "garden",
    "kitchen",
    "recipe",
    "market",
]


def long_texts(n: int, *, seed: int) -> list[str]:
    """Distinct review-like texts of about 230 characters (what the issue's client sent)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [f"Review {i}:"]
        while sum(len(w) + 1 for w in words) < 230:
            words.append(rng.choice(WORDS))
        out.append(" ".join(words))
    return out


def during_encode(
    url: str, args: argparse.Namespace, *, kind: str, log_dir: Path
) -> list[list[object]]:
    """Batch ingest while the in-process worker encodes thousands of new long texts."""
    from app.db.session import Database
    from benchmarks import seed

    common.fresh_database(url)
    events = make_events("d", 400 * args.batch, users=args.users, items=args.items, seed=4)
    with Service(url, log_dir=log_dir, worker="inline") as service:
        db = Database(url)
        now = datetime.now(UTC)
        seed.events(
            db,
            (
                {"event_id": f"t{i}", "user_id": f"r{i}", "type": "review", "text": text,
                 "occurred_at": now}
                for i, text in enumerate(long_texts(args.encode_texts, seed=5))
            ),
        )  # fmt: skip
        db.dispose()
        time.sleep(1.0)  # the worker's next poll finds them and starts encoding
        load = run_load(
            service.port,
            as_requests(events, args.batch),
            concurrency=2,
            duration=args.encode_seconds,
            headers=AUTH,
        )
    other = {status: n for status, n in load.statuses.items() if status != 202}
    p99 = common.percentile(load.latencies, 99)
    return [
        [kind, f"while the worker encodes {args.encode_texts:,} new ~230-char texts: "
               f"POST /v1/events, {args.batch}/request, c=2 (events/s)",
         load.requests * args.batch / load.seconds if load.seconds else 0, "", ""],
        [kind, "same: batch latency p50 / p99 (ms)",
         f"{common.percentile(load.latencies, 50) * 1000:.0f} / {p99 * 1000:.0f}",
         "p99 <= 1,000", common.verdict(p99, 1.0, higher_is_better=False)],
        [kind, "same: answers other than 202", json.dumps(other) if other else "none",
         "none", "met" if not other else "MISSED"],
    ]  # fmt: skip


def check(statuses: dict[int, int], expected: int) -> None:
    if set(statuses) != {expected}:
        raise SystemExit(f"unexpected statuses {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--events", type=int, default=200_000, help="events in the batch run")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--concurrency", type=int, default=4, help="connections, batch run")
    parser.add_argument("--seconds", type=float, default=10.0, help="each single-event run")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--encode-texts", type=int, default=10_000, help="0: skip that phase")
    parser.add_argument("--encode-seconds", type=float, default=30.0)
    parser.add_argument(
        "--only-during-encode", action="store_true", help="only the availability phase"
    )
    args = parser.parse_args()
    common.report_per_database("Ingest", args, bench_database)


if __name__ == "__main__":
    main()
