"""Profile stage (`app.profile.service.apply_pending`), cold and warm, against raw encoding.

    python -m benchmarks.bench_profile ../shared/data/movielens-ml-latest-small \
        --database-url sqlite:////tmp/interest-clusters-bench/profile/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_profile

Cold: N events, each with a text never seen before (a MovieLens movie, see movielens.py),
against `Embedder.encode` (the model's own `encode`, batch 64) on the same texts in the same
process; with several `--backend`s, each in turn on the same texts, compared with the first.
Warm: MovieLens ratings as events in time order (movielens.py maps ratings to types),
referring to items whose texts are all in the embedding cache already (the last backend's).
The stage runs in this process with the app's default settings (batch_size 1024).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import Table, bindparam, select, update

from app.config import load_settings
from app.db.models import Event, UserProfile
from app.db.session import Database
from app.embedding.embedder import load_embedder
from app.profile.service import apply_pending
from benchmarks import common, movielens, seed


def drain(db: Database, embedder, settings) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    """Run the stage until nothing is pending: (events applied, seconds, texts encoded)."""
    applied = encoded = 0
    started = time.perf_counter()
    while True:
        result = apply_pending(db, embedder, settings)
        if not result.applied:
            return applied, time.perf_counter() - started, encoded + result.encoded
        applied += result.applied
        encoded += result.encoded


def raw_writes(db: Database, users: list[str], batch: int) -> float:
    """Events/s of the writes the stage cannot avoid, with nothing else: per batch, one
    transaction that rewrites each batch user's 3 KB profile row (one Core executemany) and
    marks the batch's events applied (one UPDATE per 1000 ids). Run after the stage, on the
    same users and events."""
    profile_table = cast(Table, UserProfile.__table__)
    event_table = cast(Table, Event.__table__)
    blob = np.zeros(384).tobytes()
    with db.read() as session:
        ids = list(session.scalars(select(Event.id).where(Event.event_id.like("x%"))))
    rewrite = (
        update(profile_table)
        .where(profile_table.c.user_id == bindparam("u"))
        .values(vector_sum=bindparam("v"), version=profile_table.c.version + 1)
    )
    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, len(users), batch):
        with db.write() as session:
            conn = session.connection()
            chunk = users[start : start + batch]
            conn.execute(rewrite, [{"u": u, "v": blob} for u in chunk])
            marked = ids[start : start + batch]
            for part in range(0, len(marked), 1000):
                conn.execute(
                    update(event_table)
                    .where(event_table.c.id.in_(marked[part : part + 1000]))
                    .values(applied_at=now)
                )
    return len(users) / (time.perf_counter() - started)


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    settings = load_settings(database_url=url, worker="off", api_keys={})
    names = args.backend or [settings.embedding_backend]
    embedders = {
        name: load_embedder(
            settings.embedding_model, backend=name, cache_dir=settings.embedding_cache_dir
        )
        for name in names
    }
    texts = movielens.item_texts(args.movielens)
    movie_ids = list(texts)
    cold_ids = movie_ids[: args.cold]

    common.fresh_database(url)
    db = Database(url)
    seed.items(db, {f"m{m}": texts[m] for m in movie_ids})
    for embedder in embedders.values():
        embedder.encode(["warm the model up", "with a few texts"] * 32)

    # Raw limit and stage alternate over chunks of the same (still uncached) texts, and the
    # backends take turns, so a change in the machine's background load hits all alike. Each
    # backend encodes every text again: its vectors have their own cache key.
    raw_seconds = dict.fromkeys(names, 0.0)
    stage_seconds = dict.fromkeys(names, 0.0)
    applied = dict.fromkeys(names, 0)
    for r in range(args.rounds):
        chunk = cold_ids[r :: args.rounds]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            embedder = embedders[name]
            started = time.perf_counter()
            embedder.encode([texts[m] for m in chunk])
            raw_seconds[name] += time.perf_counter() - started
            now = datetime.now(UTC)
            seed.events(
                db,
                (
                    {
                        "event_id": f"c{name}-{m}",
                        "user_id": f"u{n % 500}",
                        "type": "view",
                        "item_id": f"m{m}",
                        "occurred_at": now,
                    }
                    for n, m in enumerate(chunk)
                ),
            )
            done, seconds, encoded = drain(db, embedder, settings)
            assert done == len(chunk) == encoded, (name, done, encoded)
            applied[name] += done
            stage_seconds[name] += seconds
    rows: list[list[object]] = []
    base = applied[names[0]] / stage_seconds[names[0]]
    for name in names:
        raw, cold = applied[name] / raw_seconds[name], applied[name] / stage_seconds[name]
        rows += [
            [kind, f"{name}: cold: {applied[name]:,} events, every text new (events/s)", cold,
             "", ""],
            [kind, f"{name}: raw Embedder.encode, same texts (texts/s)", raw, "", ""],
            [kind, f"{name}: cold / raw (%)", 100 * cold / raw, ">= 85",
             common.verdict(100 * cold / raw, 85)],
        ]  # fmt: skip
        if name != names[0]:
            rows.append([kind, f"{name}: cold vs {names[0]} cold (x)", cold / base, ">= 2.5",
                         common.verdict(cold / base, 2.5)])  # fmt: skip
    embedder = embedders[names[-1]]

    # Warm: the rest of the catalogue into the cache (untimed), then replay the ratings.
    seed.warm_cache(db, embedder, [texts[m] for m in movie_ids])
    ratings = movielens.ratings(args.movielens)[: args.warm]
    seed.events(
        db,
        (
            {
                "event_id": f"r{n}",
                "user_id": f"ml{r.user}",
                "type": r.event_type,
                "item_id": f"m{r.movie}",
                "occurred_at": r.occurred_at,
            }
            for n, r in enumerate(ratings)
        ),
    )
    applied, seconds, encoded = drain(db, embedder, settings)
    assert encoded == 0 and applied == len(ratings), (applied, encoded)
    warm = applied / seconds
    rows.append(
        [
            kind,
            f"warm: {applied:,} MovieLens ratings (events/s)",
            warm,
            ">= 5,000",
            common.verdict(warm, 5000),
        ]
    )

    # The replay is kind to the stage: ratings come in per-user sessions, so a 1024-event batch
    # touches few profiles. Here every event of a batch is a different user: half the batches
    # create profiles, half fold into existing ones.
    rng = random.Random(0)
    now = datetime.now(UTC)
    n = min(args.warm, 2 * args.random_users)
    seed.events(
        db,
        (
            {"event_id": f"x{i}", "user_id": f"x{i % args.random_users}",
             "type": "view", "item_id": f"m{rng.choice(movie_ids)}", "occurred_at": now}
            for i in range(n)
        ),
    )  # fmt: skip
    applied, seconds, encoded = drain(db, embedder, settings)
    assert encoded == 0 and applied == n, (applied, encoded)
    stage = applied / seconds
    raw = raw_writes(db, [f"x{i % args.random_users}" for i in range(n)], settings.batch_size)
    rows += [
        [kind, f"warm: {n:,} events, every event of a batch a different user (events/s)",
         stage, ">= 10,000", common.verdict(stage, 10_000)],
        [kind, "raw: the stage's writes alone, same batches (events/s)", raw, "", ""],
        [kind, "warm, different users / raw writes (%)", 100 * stage / raw, "", ""],
    ]  # fmt: skip
    db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("movielens", type=Path, help="the MovieLens ml-latest-small directory")
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--cold", type=int, default=2000, help="events with new texts")
    parser.add_argument(
        "--backend",
        action="append",
        help="embedding backends, side by side "
        "(the first is the base of the ratios; default: APP_EMBEDDING_BACKEND)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="cold: raw/stage alternations")
    parser.add_argument("--random-users", type=int, default=10_000, help="warm, random case")
    parser.add_argument("--warm", type=int, default=200_000, help="ratings replayed (max all)")
    args = parser.parse_args()
    common.report_per_database("Profile stage", args, bench_database)


if __name__ == "__main__":
    main()
