"""GET /v1/users/{id}/cluster with many users: throughput, and latency at a fixed rate.

    python -m benchmarks.bench_query --users 100000 \
        --database-url sqlite:////tmp/interest-clusters-bench/query/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_query

Seeding goes straight into the database, not through the API (the subject is the query):
N `user_profile` rows with clustered random unit vectors, E applied `event` rows per user (the
query counts the user's pending events), and one checkpoint trained by `Trainer.step` on the
first batch of profiles. Then `python -m app serve` (APP_WORKER=off) answers random users:
closed-loop at concurrency C for the ceiling, then a fixed schedule of R requests/s for the
latency (measured from each request's slot). GET /healthz of the same server at concurrency C
is the trivial-endpoint limit of this client and machine.
"""

from __future__ import annotations

import argparse
import random

from app.db.session import Database
from benchmarks import common, seed
from benchmarks.loadgen import run_load
from benchmarks.service import AUTH, Client, Service


def seed_database(url: str, args: argparse.Namespace) -> None:
    db, _, _ = seed.trained_population(url, users=args.users, events_per_user=args.events_per_user)
    db.dispose()


def seeded(url: str, args: argparse.Namespace) -> bool:
    """Whether the database holds this run's seed already (--reuse)."""
    from sqlalchemy import func, select

    from app.db.models import ModelCheckpoint, UserProfile

    db = Database(url)
    try:
        with db.read() as session:
            users = session.scalar(select(func.count()).select_from(UserProfile))
            models = session.scalar(select(func.count()).select_from(ModelCheckpoint))
        return users == args.users and models == 1
    except Exception:
        return False
    finally:
        db.dispose()


def warm_caches(url: str) -> None:
    """Read every profile and pending-count index page once, so the run measures a warm
    server, not a disk: on a shared machine the OS may have evicted the files since seeding."""
    from sqlalchemy import text

    db = Database(url)
    # Touch each blob's last byte: length() alone would not read PostgreSQL's TOAST pages.
    last_byte = (
        "get_byte(vector_sum, octet_length(vector_sum) - 1)"
        if common.backend(url) == "postgresql"
        else "unicode(hex(substr(vector_sum, -1)))"
    )
    with db.read() as session:
        session.execute(text(f"SELECT sum({last_byte}) FROM user_profile"))
        session.execute(text("SELECT count(*) FROM event WHERE user_id >= ''"))
    db.dispose()


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    if not (args.reuse and seeded(url, args)):
        seed_database(url, args)
    warm_caches(url)
    rng = random.Random(0)
    paths = [
        ("GET", f"/v1/users/u{rng.randrange(args.users)}/cluster", b"") for _ in range(100_000)
    ]
    with Service(url, log_dir=common.work_dir("query"), worker="off") as service:
        port = service.port
        answer = Client(service.url).cluster("u0")
        assert answer["status"] == "assigned", answer
        c = args.concurrency
        run_load(port, paths, concurrency=c, duration=2, headers=AUTH)  # warm-up
        # Rounds that alternate the query and the trivial endpoint, best of each: on a shared
        # machine one run of either measures the moment as much as the server.
        ceilings, trivials = [], []
        for _ in range(args.rounds):
            ceilings.append(run_load(port, paths, concurrency=c, duration=args.seconds,
                                     headers=AUTH))  # fmt: skip
            trivials.append(run_load(port, [("GET", "/healthz", b"")], concurrency=c,
                                     duration=args.seconds, headers=AUTH))  # fmt: skip
        ceiling = max(ceilings, key=lambda r: r.rate)
        trivial = max(trivials, key=lambda r: r.rate)
        paced = run_load(
            port, paths, concurrency=c, duration=args.seconds, headers=AUTH, rate=args.rate
        )
        # Past its ceiling a paced run only measures a growing queue; at half the ceiling it
        # says what a request costs when the server keeps up.
        half = run_load(
            port, paths, concurrency=c, duration=args.seconds, headers=AUTH,
            rate=ceiling.rate / 2,
        )  # fmt: skip
    for result in (*ceilings, paced, half):
        if set(result.statuses) != {200}:
            raise SystemExit(f"unexpected statuses {result.statuses}")
    p50, p99 = (common.percentile(paced.latencies, q) * 1000 for q in (50, 99))
    half_p99 = common.percentile(half.latencies, 99) * 1000
    return [
        [kind, f"closed loop, c={c}, best of {args.rounds} (req/s)", ceiling.rate, ">= 1,000",
         common.verdict(ceiling.rate, 1000)],
        [kind, f"closed loop, c={c}: p50 / p99 (ms)",
         f"{common.percentile(ceiling.latencies, 50) * 1000:.1f} / "
         f"{common.percentile(ceiling.latencies, 99) * 1000:.1f}", "", ""],
        [kind, f"paced at {args.rate:,.0f}/s: achieved (req/s)", paced.rate, "", ""],
        [kind, f"paced at {args.rate:,.0f}/s: p50 (ms)", p50, "", ""],
        [kind, f"paced at {args.rate:,.0f}/s: p99 (ms)", p99, "<= 15",
         common.verdict(p99, 15, higher_is_better=False)],
        [kind, f"paced at half the ceiling ({ceiling.rate / 2:,.0f}/s): p50 / p99 (ms)",
         f"{common.percentile(half.latencies, 50) * 1000:.1f} / {half_p99:.1f}", "<= 15 (p99)",
         common.verdict(half_p99, 15, higher_is_better=False)],
        [kind, f"GET /healthz, c={c} (req/s, the trivial limit)", trivial.rate, "", ""],
        [kind, "closed loop / GET /healthz (%)", 100 * ceiling.rate / trivial.rate, ">= 50",
         common.verdict(100 * ceiling.rate / trivial.rate, 50)],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s, paced run")
    parser.add_argument("--seconds", type=float, default=15.0, help="each run")
    parser.add_argument("--rounds", type=int, default=3, help="query and /healthz runs, best of")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    args = parser.parse_args()
    common.report_per_database("Queries", args, bench_database)


if __name__ == "__main__":
    main()
