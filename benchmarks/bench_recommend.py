"""GET /v1/users/{id}/recommendations with many users, and the JSON Lines export.

    python -m benchmarks.bench_recommend --users 1000000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_recommend

Seeding goes straight into the database (seed.trained_population: N profiles, E applied view
events per user on 5,000 items, a first model), plus the items' texts with random vectors in
the embedding cache (so each request derives the user's interests from real rows), the sweep
that gives every user a current assignment, and the rankings of the model version. Then
`python -m app serve` (APP_WORKER=off) answers random users: closed loop at concurrency C for
the ceiling, then paced at half of it for the latency; GET /healthz at concurrency C is this
client's trivial limit. The export: `python -m app export` to a file (lines/s, peak memory),
beside the raw limit of reading the same rows through the driver without formatting them.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np

from app.assignment import repository as assignment_repository
from app.assignment import service as assignment_service
from app.db.models import Embedding
from app.db.session import Database
from app.embedding.embedder import DEFAULT_MODEL_ID, text_hash
from app.recommend import rankings
from benchmarks import common, seed
from benchmarks.loadgen import run_load
from benchmarks.service import AUTH, Client, Service

ITEMS = 5000  # seed.trained_population's events name items m0 .. m4999


def seed_database(url: str, args: argparse.Namespace) -> None:
    db, settings, trainer = seed.trained_population(
        url, users=args.users, events_per_user=args.events_per_user
    )
    texts = {f"m{i}": f"item {i}: a title of some film or other" for i in range(ITEMS)}
    seed.items(db, texts)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((ITEMS, 384)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime.now(UTC)
    rows = (
        {"model_id": DEFAULT_MODEL_ID, "text_hash": text_hash(t), "vector": v.tobytes(),
         "created_at": now}
        for t, v in zip(texts.values(), vectors, strict=True)
    )  # fmt: skip
    seed._insert(db, Embedding.__table__, rows)
    started = time.perf_counter()
    assignment_service.sweep(db, trainer.model, ids=trainer.ids, version=trainer.version)
    print(f"sweep of {args.users:,} users: {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    rankings.refresh(
        db, version=trainer.version, settings=settings, embedding_model=trainer.embedding_model
    )
    print(f"rankings: {time.perf_counter() - started:.1f} s", flush=True)
    db.dispose()


def export(url: str, out: str) -> tuple[float, float, float, int]:
    """Lines/s of `python -m app export` from start to exit and while streaming (its own
    report, without the interpreter's start), its peak RSS (MB), and the lines it wrote."""
    env = {"APP_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "export", "--output", out],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, common.rss_mb(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    message = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, message
    lines = int(message.split(" assignments exported")[0].split()[-1])
    streaming = float(message.split(") in ")[1].split()[0])
    return lines / seconds, lines / max(streaming, 1e-9), peak, lines


def raw_rows_per_second(url: str) -> float:
    """The same rows read through the driver in the same batches, not formatted: the limit."""
    db = Database(url)
    started = time.perf_counter()
    with assignment_service.snapshot(db) as session:
        rows = sum(1 for _ in assignment_repository.stream_all(session, batch=10_000))
    db.dispose()
    return rows / (time.perf_counter() - started)


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    if not args.reuse:
        seed_database(url, args)
    rng = random.Random(0)
    paths = [
        ("GET", f"/v1/users/u{rng.randrange(args.users)}/recommendations", b"")
        for _ in range(100_000)
    ]
    with Service(url, log_dir=common.work_dir("recommend"), worker="off") as service:
        port, c = service.port, args.concurrency
        answer = Client(service.url).recommendations("u0")
        assert answer["personal"] and len(answer["items"]) == 20, answer
        run_load(port, paths, concurrency=c, duration=2, headers=AUTH)  # warm-up
        ceiling = run_load(port, paths, concurrency=c, duration=args.seconds, headers=AUTH)
        half = run_load(
            port, paths, concurrency=c, duration=args.seconds, headers=AUTH,
            rate=ceiling.rate / 2,
        )  # fmt: skip
        trivial = run_load(
            port, [("GET", "/healthz", b"")], concurrency=c, duration=args.seconds, headers=AUTH
        )
    for result in (ceiling, half):
        if set(result.statuses) != {200}:
            raise SystemExit(f"unexpected statuses {result.statuses}")
    p50, p99 = (common.percentile(half.latencies, q) * 1000 for q in (50, 99))
    out = str(common.work_dir("recommend") / "export.jsonl")
    rate, streaming, peak, lines = export(url, out)
    raw = raw_rows_per_second(url)
    return [
        [kind, "users", f"{args.users:,}", "", ""],
        [kind, f"recommendations, closed loop c={c} (req/s)", ceiling.rate, "", ""],
        [kind, f"paced at half the ceiling ({ceiling.rate / 2:,.0f}/s): p50 (ms)", p50, "", ""],
        [kind, f"paced at half the ceiling ({ceiling.rate / 2:,.0f}/s): p99 (ms)", p99, "<= 20",
         common.verdict(p99, 20, higher_is_better=False)],
        [kind, f"GET /healthz, c={c} (req/s, the trivial limit)", trivial.rate, "", ""],
        [kind, f"export of {lines:,} assignments, start to exit (lines/s)", rate, "", ""],
        [kind, "export: while streaming (lines/s)", streaming, ">= 100,000",
         common.verdict(streaming, 100_000)],
        [kind, "export: peak RSS of the process (MB)", peak, "constant", ""],
        [kind, "raw limit: the same rows read, not formatted (rows/s)", raw, "", ""],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="each run")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    args = parser.parse_args()
    common.report_per_database("Recommendations and export", args, bench_database)


if __name__ == "__main__":
    main()
