"""How long one bad user holds up everyone else (issue 9): the profile stage draining a queue
with a poison pill in it, against the same queue without one, in the same run.

    python benchmarks/bench_poison.py ../shared/data/movielens-ml-latest-small \
        --database-url sqlite:////tmp/interest-clusters-bench/poison/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_poison

The queue: N MovieLens ratings as events (texts already in the embedding cache, so the numbers
are the stage's own cost, not the model's), with one user's P events in its middle that were
stored before weights were bounded (1.7e308 each: together they overflow a profile sum). Before
isolation the batch holding them failed on every step, forever: every later event waited. Now
the batch is bisected; the stall is the extra time the others wait for it.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from app.config import load_settings
from app.db.models import Event
from app.db.session import Database
from app.embedding import service as embedding_service
from app.embedding.embedder import load_embedder
from app.profile.service import apply_pending
from app.quarantine import repository as quarantine_repository
from benchmarks import common, movielens


def queue(args: argparse.Namespace, *, poison: bool) -> list[dict[str, object]]:
    texts = movielens.item_texts(args.data)
    ratings = movielens.ratings(args.data)[: args.events]
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = [
        {
            "event_id": f"r{i}",
            "user_id": f"user-{r.user}",
            "type": r.event_type,
            "text": texts[r.movie],
            "weight": None,
            "occurred_at": r.occurred_at,
            "received_at": now,
        }
        for i, r in enumerate(ratings)
    ]
    if poison:
        bad = [
            {**rows[0], "event_id": f"p{i}", "user_id": "mallory", "weight": 1.7e308}
            for i in range(args.poison)
        ]
        rows[len(rows) // 2 : len(rows) // 2] = bad
    return rows


def drain(db: Database, embedder, settings) -> tuple[float, int, int, int]:  # type: ignore[no-untyped-def]
    """(seconds, applied, quarantined, steps) until nothing is processable."""
    started, applied, quarantined, steps = time.perf_counter(), 0, 0, 0
    while (step := apply_pending(db, embedder, settings)).applied or step.quarantined:
        applied, quarantined, steps = (
            applied + step.applied,
            quarantined + step.quarantined,
            steps + 1,
        )
    return time.perf_counter() - started, applied, quarantined, steps


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    embedder = load_embedder("all-MiniLM-L6-v2")
    settings = load_settings(database_url=url, worker="off")
    name = common.backend(url)
    results = {}
    for poison in (False, True):
        common.fresh_database(url)
        db = Database(url)
        rows = queue(args, poison=poison)
        # A warm cache: the stage's cost, not the model's.
        embedding_service.embed(db, embedder, sorted({str(r["text"]) for r in rows}))
        with db.write() as session:
            session.execute(Event.__table__.insert(), rows)
        results[poison] = drain(db, embedder, settings)
        with db.read() as session:
            assert quarantine_repository.count(session) == results[poison][2]
        db.dispose()
    clean, poisoned = results[False], results[True]
    stall = poisoned[0] - clean[0]
    return [
        [name, f"drain {args.events} events, no poison (raw limit)", clean[0], "", "s"],
        [name, f"drain with {args.poison} poison events of one user", poisoned[0], "", "s"],
        [name, "events applied / quarantined", f"{poisoned[1]} / {poisoned[2]}", "", ""],
        [
            name,
            "stall caused by the bad user",
            stall,
            "< 10",
            common.verdict(stall, 10, higher_is_better=False),
        ],
        [name, "ratio poisoned / clean", poisoned[0] / clean[0], "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--poison", type=int, default=20)
    args = parser.parse_args()
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    common.report_per_database("One bad user in the profile stage", args, bench_database)


if __name__ == "__main__":
    main()
