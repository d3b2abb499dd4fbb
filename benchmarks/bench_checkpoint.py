"""Checkpoint codec: dump_state (with its witness) and load_state (which repeats it) against
the partial_fit step each checkpoint follows in the trainer.

    python benchmarks/bench_checkpoint.py

Trains OnlineKMeans on clustered random unit vectors (384-d, like all-MiniLM-L6-v2) for k in
8 and 64, then times, best of --repeats: one partial_fit of a 1,024-row batch (the raw step
the trainer takes before each checkpoint; default batch size), dump_state, the witness part of
it alone, and load_state. No database: the codec's own cost (a whole Trainer.step, with its
reads and commits, is bench_train.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from app.clustering import codec, estimator_state
from app.clustering.model import OnlineKMeans
from benchmarks import common

DIM = 384
BATCH = 1024


def best_ms(action: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs: on a loaded machine the others measure the neighbours."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


def bench(k: int, repeats: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((k, DIM))
    rows = topics[rng.integers(0, k, 20 * BATCH)] + 0.3 * rng.standard_normal((20 * BATCH, DIM))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    model = OnlineKMeans(n_clusters=k, n_features=DIM, half_life=100_000.0, batch_size=BATCH)
    model.partial_fit(rows[: 19 * BATCH])
    last = rows[19 * BATCH :]
    state = codec.dump_state(model, embedding_model="bench")

    def restore() -> OnlineKMeans:
        return codec.load_state(state, embedding_model="bench", n_features=DIM)

    copies = iter([restore() for _ in range(repeats)])  # each step on a model not yet stepped
    raw = best_ms(lambda: next(copies).partial_fit(last), repeats)
    dump = best_ms(lambda: codec.dump_state(model, embedding_model="bench"), repeats)
    witness = best_ms(lambda: estimator_state.witness(model.estimator), repeats)
    load = best_ms(restore, repeats)
    return [
        [k, "partial_fit of 1,024 rows: the raw step (ms)", raw, ""],
        [k, "dump_state (ms)", dump, f"{100 * dump / raw:.0f}% of the step"],
        [k, "  of which the witness (ms)", witness, f"{100 * witness / raw:.0f}% of the step"],
        [k, "load_state, witness repeated (ms)", load, f"{100 * load / raw:.0f}% of the step"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(common.machine())
    print("command:", " ".join(sys.argv))
    rows = [row for k in (8, 64) for row in bench(k, args.repeats)]
    print(common.table("checkpoint codec, 384-d", ["k", "measure", "value", ""], rows))


if __name__ == "__main__":
    main()
