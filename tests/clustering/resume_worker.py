"""Resume training from a checkpoint on disk in a fresh process (driven by test_codec)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from app.clustering.codec import CheckpointState, dump_state, load_state


def read_state(directory: Path) -> CheckpointState:
    """Checkpoint from meta.json + centers.bin + counts.bin."""
    return CheckpointState(
        meta=json.loads((directory / "meta.json").read_text()),
        centers=(directory / "centers.bin").read_bytes(),
        counts=(directory / "counts.bin").read_bytes(),
    )


def write_state(directory: Path, state: CheckpointState) -> None:
    """Checkpoint as meta.json + centers.bin + counts.bin."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").write_text(json.dumps(state.meta, allow_nan=False))
    (directory / "centers.bin").write_bytes(state.centers)
    (directory / "counts.bin").write_bytes(state.counts)


def main(work: Path) -> None:
    """Load work/in, train on work/batches.npy, write work/out and work/out/predictions.npy."""
    state = read_state(work / "in")
    embedding_model = state.meta["embedding_model"]
    model = load_state(state, embedding_model=embedding_model, n_features=state.meta["n_features"])
    for batch in np.load(work / "batches.npy", allow_pickle=False):
        model.partial_fit(batch)
    write_state(work / "out", dump_state(model, embedding_model=embedding_model))
    np.save(work / "out" / "predictions.npy", model.predict(np.load(work / "probe.npy")))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
