"""Train stage (`Trainer.step`) profile updates/s against raw `MiniBatchKMeans.partial_fit`.

    python -m benchmarks.bench_train --users 100000 \
        --database-url sqlite:////tmp/interest-clusters-bench/train/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_train

Seeds N changed (untrained) profiles with clustered random unit vectors straight into the
database, then runs `Trainer.step` until every profile is trained: each step reads up to
step_batches * batch_size changed profiles, partial_fits them batch_size rows a call, then
commits a checkpoint, the assignment history and the trained marks in one write. The raw
limit is sklearn's `MiniBatchKMeans.partial_fit` on the same rows in the same batches, in
memory. Default settings (k=8, batch_size 1024, 16 batches a step).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sqlalchemy import delete, update

from app.clustering.vectors import unit_rows
from app.config import Settings, load_settings
from app.db.models import ClusterAssignment, ModelCheckpoint, UserProfile
from app.db.session import Database
from app.embedding.embedder import DEFAULT_MODEL_ID
from app.model.trainer import Trainer
from benchmarks import common, seed

DIM = 384  # all-MiniLM-L6-v2


def raw_partial_fit(X: np.ndarray, *, clusters: int, batch: int) -> float:
    """Rows/s of sklearn alone, fed like the trainer feeds it (float64, batch rows a call)."""
    model = MiniBatchKMeans(
        n_clusters=clusters, batch_size=batch, n_init=1, random_state=0, compute_labels=False
    )
    X = X.astype(np.float64)
    started = time.perf_counter()
    for start in range(0, len(X), batch):
        model.partial_fit(X[start : start + batch])
    return len(X) / (time.perf_counter() - started)


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    settings = load_settings(
        database_url=url,
        worker="off",
        api_keys={},
        batch_size=args.batch_size,
        train_step_batches=args.step_batches,
        min_users_first_fit=args.batch_size,
        clusters=args.clusters,
        refit=False,  # the stream's step is measured; refits run off its path
    )
    common.fresh_database(url)
    db = Database(url)
    seed.profiles(db, args.users, dim=DIM, model_id=DEFAULT_MODEL_ID, clusters=args.clusters)
    with db.read() as session:
        blobs = [b for (b,) in session.query(UserProfile.vector_sum).order_by(UserProfile.user_id)]
    X, _ = unit_rows(blobs, DIM)

    # Rounds that alternate a full training pass and a raw pass, best of each: sklearn's
    # OpenMP threads are very sensitive to other load on two cores, so a single pass of either
    # measures the moment as much as the code.
    passes, raws = [], []
    for _ in range(args.rounds):
        passes.append(train_pass(db, settings))
        raws.append(raw_partial_fit(X, clusters=settings.clusters, batch=settings.batch_size))
    seconds, rows, steps = min(passes)
    assert rows == args.users, rows
    raw, rate = max(raws), rows / seconds
    db.dispose()
    n = args.rounds
    return [
        [kind, f"Trainer.step: {rows:,} profiles, {steps} steps, best of {n} (profiles/s)",
         rate, ">= 100,000", common.verdict(rate, 100_000)],
        [kind, f"raw MiniBatchKMeans.partial_fit, same rows, best of {n} (rows/s)", raw, "", ""],
        [kind, "Trainer.step / raw (%)", 100 * rate / raw, ">= 50",
         common.verdict(100 * rate / raw, 50)],
        [kind, "mean step (ms)", 1000 * seconds / steps, "", ""],
    ]  # fmt: skip


def train_pass(db: Database, settings: Settings) -> tuple[float, int, int]:
    """(seconds, profiles, steps) of a trainer that trains every profile from no model."""
    with db.write() as session:
        session.execute(update(UserProfile).values(trained_version=0))
        session.execute(delete(ModelCheckpoint))
        session.execute(delete(ClusterAssignment))
    trainer = Trainer(settings, embedding_model=DEFAULT_MODEL_ID, dim=DIM)
    trainer.restore(db)
    rows = steps = 0
    started = time.perf_counter()
    while (result := trainer.step(db)).rows:
        rows, steps = rows + result.rows, steps + 1
    return time.perf_counter() - started, rows, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=8, help="directions the data is around")
    parser.add_argument("--batch-size", type=int, default=1024, help="APP_BATCH_SIZE")
    parser.add_argument("--rounds", type=int, default=3, help="train and raw passes, best of")
    parser.add_argument("--step-batches", type=int, default=16, help="APP_TRAIN_STEP_BATCHES")
    args = parser.parse_args()
    common.report_per_database("Train stage", args, bench_database)


if __name__ == "__main__":
    main()
