"""Checkpoint codec: bit-exact resume (in process and in a fresh one) and restore validation."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.clustering.codec import (
    CheckpointError,
    CheckpointState,
    decode_arrays,
    dump_state,
    load_state,
)
from app.clustering.model import OnlineKMeans
from tests.clustering.resume_worker import read_state, write_state
from tests.clustering.synthetic import blobs, topic_centers

D = 16
K = 8
EMBEDDER = "test-embedder"
N_BEFORE = 6
REPO_ROOT = Path(__file__).resolve().parents[2]


def make(half_life: float | None = 300.0) -> OnlineKMeans:
    return OnlineKMeans(n_clusters=K, n_features=D, half_life=half_life, batch_size=64, seed=3)


def batches() -> list[np.ndarray]:
    """Users on 3 topics, then on 3 others: old centers starve, so reassignment draws on the RNG."""
    rng = np.random.default_rng(7)
    old, new = topic_centers(rng, 3, D), topic_centers(rng, 3, D)
    return [blobs(rng, old, 150) for _ in range(N_BEFORE)] + [
        blobs(rng, new, 150) for _ in range(14)
    ]


def probe() -> np.ndarray:
    rng = np.random.default_rng(99)
    return blobs(rng, topic_centers(rng, 6, D), 500)


def train(model: OnlineKMeans, data: list[np.ndarray]) -> OnlineKMeans:
    for batch in data:
        model.partial_fit(batch)
    return model


def trajectory(model: OnlineKMeans, data: list[np.ndarray]) -> list[np.ndarray]:
    """Centers after each batch: forgetting can erase a past difference by the last batch."""
    path = []
    for batch in data:
        model.partial_fit(batch)
        path.append(model.centers)
    return path


def json_round_trip(state: CheckpointState) -> CheckpointState:
    """What a database JSON column gives back: strict JSON, new objects."""
    meta = json.loads(json.dumps(state.meta, allow_nan=False))
    return CheckpointState(meta=meta, centers=bytes(state.centers), counts=bytes(state.counts))


def assert_same_training(a: OnlineKMeans, b: OnlineKMeans) -> None:
    assert np.array_equal(a.centers, b.centers)
    assert np.array_equal(a.counts, b.counts)
    assert a.n_steps == b.n_steps
    assert np.array_equal(a.predict(probe()), b.predict(probe()))
    assert dump_state(a, embedding_model=EMBEDDER) == dump_state(b, embedding_model=EMBEDDER)


@pytest.mark.parametrize("half_life", [300.0, None], ids=["forgetting", "no-forgetting"])
def test_resume_is_bit_identical(half_life: float | None) -> None:
    data = batches()
    uninterrupted = make(half_life)
    expected_path = trajectory(uninterrupted, data)

    before = train(make(half_life), data[:N_BEFORE])
    state = json_round_trip(dump_state(before, embedding_model=EMBEDDER))
    resumed = load_state(state, embedding_model=EMBEDDER, n_features=D)
    path = trajectory(resumed, data[N_BEFORE:])

    assert all(map(np.array_equal, path, expected_path[N_BEFORE:]))
    assert_same_training(resumed, uninterrupted)
    if half_life:
        # starved centers got randomly reassigned, so the RNG restore was put to use
        assert resumed.estimator._random_state.get_state()[2] != state.meta["rng"]["pos"]


@pytest.mark.parametrize(
    "perturb",
    [
        # not a one-word shift of pos: bounded draws reject words and resynchronise at once
        lambda m: m["rng"].update(key=[v ^ 0x55555555 for v in m["rng"]["key"]]),
        # move the reassignment cadence by a step
        lambda m: m.update(_n_since_last_reassign=0 if m["_n_since_last_reassign"] else 10 * K - 1),
        lambda m: m.update(half_life=m["half_life"] * 2),
    ],
    ids=["rng", "reassign-counter", "half-life"],
)
def test_resume_depends_on_restored_state(perturb: Callable[[dict], None]) -> None:
    """Guards the test above: a slightly wrong restore must be visible."""
    data = batches()
    expected_path = trajectory(make(), data)
    state = dump_state(train(make(), data[:N_BEFORE]), embedding_model=EMBEDDER)
    meta = copy.deepcopy(state.meta)
    perturb(meta)
    resumed = load_state(
        CheckpointState(meta, state.centers, state.counts), embedding_model=EMBEDDER, n_features=D
    )
    path = trajectory(resumed, data[N_BEFORE:])
    assert not all(map(np.array_equal, path, expected_path[N_BEFORE:]))


def test_resume_in_a_fresh_process(tmp_path: Path) -> None:
    data = batches()
    uninterrupted = train(make(), data)
    write_state(
        tmp_path / "in", dump_state(train(make(), data[:N_BEFORE]), embedding_model=EMBEDDER)
    )
    np.save(tmp_path / "batches.npy", np.stack(data[N_BEFORE:]))
    np.save(tmp_path / "probe.npy", probe())

    # one OpenMP thread there (the default here is all cores): the thread count is not state
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "tests.clustering.resume_worker", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )

    expected = dump_state(uninterrupted, embedding_model=EMBEDDER)
    got = read_state(tmp_path / "out")
    assert got.centers == expected.centers
    assert got.counts == expected.counts
    assert got.meta == json_round_trip(expected).meta
    predictions = np.load(tmp_path / "out" / "predictions.npy")
    assert np.array_equal(predictions, uninterrupted.predict(probe()))


def test_dump_load_dump_is_identity() -> None:
    state = dump_state(train(make(), batches()[:3]), embedding_model=EMBEDDER)
    restored = load_state(json_round_trip(state), embedding_model=EMBEDDER, n_features=D)
    assert dump_state(restored, embedding_model=EMBEDDER) == state
    assert (restored.n_clusters, restored.half_life, restored.batch_size, restored.seed) == (
        K,
        300.0,
        64,
        3,
    )


def test_decode_arrays_gives_the_model_arrays_and_validates_them() -> None:
    model = train(make(), batches()[:3])
    state = json_round_trip(dump_state(model, embedding_model=EMBEDDER))
    centers, counts = decode_arrays(state)
    assert np.array_equal(centers, model.centers) and np.array_equal(counts, model.counts)
    centers[0, 0] += 1.0  # a writable copy: the caller cannot corrupt the stored blob
    assert np.array_equal(decode_arrays(state)[0], model.centers)
    for change, message in (
        (lambda m: m["centers"].update(shape=[K, D + 1]), "centers shape"),
        (_set("codec_version", 99), "codec version 99"),
    ):
        meta = copy.deepcopy(state.meta)
        change(meta)
        with pytest.raises(CheckpointError, match=message):
            decode_arrays(CheckpointState(meta, state.centers, state.counts))


def test_unfitted_model_cannot_be_checkpointed() -> None:
    with pytest.raises(CheckpointError, match="not been trained"):
        dump_state(make(), embedding_model=EMBEDDER)


def _nan_first(raw: bytes) -> bytes:
    return np.float64("nan").astype("<f8").tobytes() + raw[8:]


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda meta: meta.update({key: value})


# (id, change to meta, change to (centers, counts), load kwargs, expected message)
CORRUPTIONS: list[tuple] = [
    ("shape", lambda m: m["centers"].update(shape=[K + 1, D]), None, {}, "centers shape"),
    ("byte-length", None, lambda c, n: (c[:-8], n), {}, "centers holds 1016 bytes, expected 1024"),
    ("counts-length", None, lambda c, n: (c, n + b"\0" * 8), {}, "counts holds 72 bytes"),
    ("nan-center", None, lambda c, n: (_nan_first(c), n), {}, "centers contain NaN"),
    ("negative-count", None, lambda c, n: (c, np.full(K, -1.0, "<f8").tobytes()), {}, "negative"),
    ("dtype", lambda m: m["counts"].update(dtype="<f4"), None, {}, "counts dtype is '<f4'"),
    ("rng-pos", lambda m: m["rng"].update(pos=625), None, {}, "rng pos must be in 0..624"),
    (
        "rng-key-length",
        lambda m: m["rng"].update(key=m["rng"]["key"][:-1]),
        None,
        {},
        "list of 624 integers, got 623",
    ),
    ("rng-key-value", lambda m: m["rng"].update(key=[2**32] * 624), None, {}, "0..2\\*\\*32-1"),
    ("rng-gauss", lambda m: m["rng"].update(has_gauss=2), None, {}, "has_gauss"),
    ("rng-missing", lambda m: m.pop("rng"), None, {}, "random generator state"),
    ("codec-version", _set("codec_version", 99), None, {}, "codec version 99"),
    ("n-steps-type", _set("n_steps_", "7"), None, {}, "n_steps_ must be an integer"),
    ("batch-size", _set("_batch_size", 65), None, {}, "_batch_size must be in 1..64"),
    (
        "reassign-counter",
        _set("_n_since_last_reassign", 10 * K),
        None,
        {},
        "_n_since_last_reassign must be in 0..79",
    ),
    ("features-in", _set("n_features_in_", D + 1), None, {}, "n_features_in_ must be in 16..16"),
    ("half-life", _set("half_life", -1), None, {}, "half_life must be null or >= 0"),
    (
        "other-model",
        None,
        None,
        {"embedding_model": "other-embedder"},
        f"trained with embedding model {EMBEDDER} \\(16-d\\) but the service runs other-embedder "
        "\\(16-d\\); run `python -m app recluster`",
    ),
    (
        "other-dimension",
        None,
        None,
        {"n_features": 384},
        f"{EMBEDDER} \\(16-d\\) but the service runs {EMBEDDER} \\(384-d\\)",
    ),
]


@pytest.mark.parametrize(
    ("change_meta", "change_bytes", "load_kwargs", "message"),
    [c[1:] for c in CORRUPTIONS],
    ids=[c[0] for c in CORRUPTIONS],
)
def test_restore_refuses_corrupt_checkpoints(
    change_meta: Callable[[dict], None] | None,
    change_bytes: Callable[[bytes, bytes], tuple[bytes, bytes]] | None,
    load_kwargs: dict,
    message: str,
) -> None:
    state = json_round_trip(dump_state(train(make(), batches()[:2]), embedding_model=EMBEDDER))
    meta, centers, counts = copy.deepcopy(state.meta), state.centers, state.counts
    if change_meta:
        change_meta(meta)
    if change_bytes:
        centers, counts = change_bytes(centers, counts)
    kwargs = {"embedding_model": EMBEDDER, "n_features": D, **load_kwargs}
    # the untouched checkpoint loads, so each failure below is the corruption's doing
    load_state(state, embedding_model=EMBEDDER, n_features=D)
    with pytest.raises(CheckpointError, match=message):
        load_state(CheckpointState(meta, centers, counts), **kwargs)
