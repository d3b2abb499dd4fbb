"""Checkpoint codec for OnlineKMeans: JSON meta + raw little-endian arrays, nothing else.

MiniBatchKMeans' private state is read and written through estimator_state, the one place
that knows it. Each checkpoint records the scikit-learn that wrote it and a witness of what
that release did with the state; a restore repeats the witness and refuses, naming
`recluster`, when anything differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import sklearn
from sklearn.cluster import MiniBatchKMeans

from app.clustering import estimator_state
from app.clustering.model import DTYPE, OnlineKMeans

CODEC_VERSION = 1
# Arrays are stored as little-endian float64 whatever the host byte order.
ARRAY_DTYPE = np.dtype(DTYPE).newbyteorder("<")
_MT_KEY_LENGTH = 624
_UINT32_MAX = 2**32 - 1
# Witness floats agree to rounding across releases (summation order may change), not more.
_WITNESS_RTOL = 1e-9


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored, with a message saying why."""


@dataclass(frozen=True)
class CheckpointState:
    """One checkpoint: JSON-serialisable meta plus the raw bytes of centers and counts."""

    meta: dict[str, Any]
    centers: bytes
    counts: bytes


def dump_state(model: OnlineKMeans, *, embedding_model: str) -> CheckpointState:
    """Encode the full training state of a fitted model."""
    if not model.fitted:
        raise CheckpointError("cannot checkpoint a clustering model that has not been trained")
    witness, names = estimator_state.witness(model.estimator)
    if problem := estimator_state.state_problem(names):
        raise CheckpointError(
            f"cannot checkpoint under scikit-learn {sklearn.__version__}: {problem}; "
            "app/clustering/estimator_state.py must learn that state before this release is used"
        )
    est = estimator_state.read(model.estimator)
    name, key, pos, has_gauss, cached_gaussian = est.random_state.get_state(legacy=True)
    if name != "MT19937":
        raise CheckpointError(f"unsupported random generator {name!r}")
    centers = np.ascontiguousarray(est.centers, dtype=ARRAY_DTYPE)
    counts = np.ascontiguousarray(est.counts, dtype=ARRAY_DTYPE)
    meta: dict[str, Any] = {
        "codec_version": CODEC_VERSION,
        "embedding_model": embedding_model,
        "n_clusters": model.n_clusters,
        "n_features": model.n_features,
        "half_life": model.half_life,
        "batch_size": model.batch_size,
        "seed": model.seed,
        # sklearn state set on the first partial_fit and read by every later one
        "n_steps_": est.n_steps,
        "_n_since_last_reassign": est.n_since_last_reassign,
        "_batch_size": est.batch_size,
        "_init_size": est.init_size,
        "n_features_in_": est.n_features_in,
        "_tol": est.tol,
        "_n_init": est.n_init,
        "rng": {
            "key": [int(v) for v in key],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "centers": {"dtype": ARRAY_DTYPE.str, "shape": list(centers.shape)},
        "counts": {"dtype": ARRAY_DTYPE.str, "shape": list(counts.shape)},
        # bit-exact resume is promised on the same scikit-learn; another one must repeat this
        "sklearn_version": sklearn.__version__,
        "witness": witness,
    }
    return CheckpointState(meta=meta, centers=centers.tobytes(), counts=counts.tobytes())


def decode_arrays(state: CheckpointState) -> tuple[np.ndarray, np.ndarray]:
    """The validated (k, d) centers and (k,) counts of a checkpoint, for readers that need the
    arrays (the query-side cache, `checkpoint show`) rather than a model that resumes training."""
    meta = _meta(state)
    n_clusters = _int(meta, "n_clusters", minimum=1)
    n_features = _int(meta, "n_features", minimum=1)
    centers = _array(meta, state.centers, "centers", (n_clusters, n_features))
    counts = _array(meta, state.counts, "counts", (n_clusters,))
    if (counts < 0).any():
        raise CheckpointError("checkpoint counts contain negative values")
    return centers, counts


def load_state(state: CheckpointState, *, embedding_model: str, n_features: int) -> OnlineKMeans:
    """Decode and validate a checkpoint into a model that resumes training bit-identically,
    verified by repeating the checkpoint's witness with the installed scikit-learn."""
    meta = _meta(state)
    _check_compatible(meta, embedding_model=embedding_model, n_features=n_features)

    n_clusters = _int(meta, "n_clusters", minimum=1)
    batch_size = _int(meta, "batch_size", minimum=n_clusters)
    half_life = meta.get("half_life")
    if half_life is not None and (
        not _is_number(half_life) or not math.isfinite(half_life) or half_life < 0
    ):
        raise CheckpointError(f"checkpoint half_life must be null or >= 0, got {half_life!r}")
    model = OnlineKMeans(
        n_clusters=n_clusters,
        n_features=n_features,
        half_life=half_life,
        batch_size=batch_size,
        seed=_int(meta, "seed"),
    )
    centers, counts = decode_arrays(state)

    tol = meta.get("_tol")
    if not _is_number(tol) or not math.isfinite(tol) or tol < 0:
        raise CheckpointError(f"checkpoint _tol must be a finite number >= 0, got {tol!r}")
    restored = estimator_state.EstimatorState(
        centers=centers,
        counts=counts,
        n_steps=_int(meta, "n_steps_", minimum=1),
        # sklearn resets it to 0 once it reaches 10 * n_clusters: a stored value is always below
        n_since_last_reassign=_int(meta, "_n_since_last_reassign", maximum=10 * n_clusters - 1),
        batch_size=_int(meta, "_batch_size", minimum=1, maximum=batch_size),
        init_size=_int(meta, "_init_size", minimum=1),
        n_features_in=_int(meta, "n_features_in_", minimum=n_features, maximum=n_features),
        tol=float(tol),
        n_init=_int(meta, "_n_init", minimum=1),
        random_state=_random_state(meta.get("rng")),
    )
    estimator_state.write(model.estimator, restored)
    _verify(meta, model.estimator)
    return model


def _meta(state: CheckpointState) -> dict[str, Any]:
    meta = state.meta
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint meta is not a JSON object")
    version = meta.get("codec_version")
    if version != CODEC_VERSION:
        raise CheckpointError(
            f"unknown checkpoint codec version {version!r}; this service reads version "
            f"{CODEC_VERSION}"
        )
    return meta


def _verify(meta: dict[str, Any], est: MiniBatchKMeans) -> None:
    """Refuse a restore that cannot be shown exact: never resume from state read differently."""
    written_by, running = meta.get("sklearn_version"), sklearn.__version__
    try:
        got, names = estimator_state.witness(est)
    except Exception as exc:  # a release whose partial_fit cannot take this state
        problem: str | None = f"a probe step fails ({type(exc).__name__}: {exc})"
    else:
        problem = estimator_state.state_problem(names) or _witness_problem(meta.get("witness"), got)
        if problem is None and "witness" not in meta and written_by != running:
            problem = "it predates restore verification (it has no witness to repeat)"
    if problem:
        raise CheckpointError(
            f"a checkpoint written by scikit-learn {written_by} does not restore exactly under "
            f"scikit-learn {running}: {problem}. Run `python -m app recluster --k "
            f"{meta.get('n_clusters')}` to train a new generation on the stored profiles, or "
            f"install scikit-learn {written_by} again to resume this one"
        )


def _witness_problem(stored: Any, got: dict[str, Any]) -> str | None:
    if stored is None:  # written before witnesses: _verify decides by the version alone
        return None
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(key), list)
        and len(stored[key]) == len(got[key])
        and all(_is_number(v) for v in stored[key])
        for key in ("labels", "moved", "counts")
    ):
        return "its witness is malformed"
    if stored["labels"] != got["labels"]:
        return "rows near the stored centres are put in other clusters"
    if not np.allclose(got["counts"], stored["counts"], rtol=_WITNESS_RTOL, atol=0.0):
        return "a step weighs the stored counts differently"
    if not np.allclose(got["moved"], stored["moved"], rtol=_WITNESS_RTOL, atol=1e-12):
        return "a step moves the stored centres differently"
    return None


def _check_compatible(meta: dict[str, Any], *, embedding_model: str, n_features: int) -> None:
    """Refuse vectors from another embedding space: distances between them mean nothing."""
    saved_model = meta.get("embedding_model")
    saved_dim = meta.get("n_features")
    if saved_model != embedding_model or saved_dim != n_features:
        raise CheckpointError(
            f"checkpoint was trained with embedding model {saved_model} ({saved_dim}-d) but the "
            f"service runs {embedding_model} ({n_features}-d); run `python -m app recluster` to "
            "train a new model from re-embedded profiles, or configure the original model again"
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(meta: dict[str, Any], key: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = meta.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint field {key} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise CheckpointError(f"checkpoint field {key} must be {bound}, got {value}")
    return value


def _array(meta: dict[str, Any], raw: bytes, name: str, shape: tuple[int, ...]) -> np.ndarray:
    spec = meta.get(name)
    if not isinstance(spec, dict):
        raise CheckpointError(f"checkpoint meta lacks the {name} array description")
    if spec.get("dtype") != ARRAY_DTYPE.str:
        raise CheckpointError(
            f"checkpoint {name} dtype is {spec.get('dtype')!r}, expected {ARRAY_DTYPE.str!r}"
        )
    if spec.get("shape") != list(shape):
        raise CheckpointError(
            f"checkpoint {name} shape is {spec.get('shape')!r}, expected {list(shape)} "
            "for this number of clusters and features"
        )
    expected = math.prod(shape) * ARRAY_DTYPE.itemsize
    if not isinstance(raw, bytes | bytearray | memoryview) or len(raw) != expected:
        got = len(raw) if isinstance(raw, bytes | bytearray | memoryview) else type(raw).__name__
        raise CheckpointError(f"checkpoint {name} holds {got} bytes, expected {expected}")
    # frombuffer is read-only and aliases the blob; sklearn updates these arrays in place.
    array = np.frombuffer(raw, dtype=ARRAY_DTYPE).reshape(shape).astype(np.float64, order="C")
    if not np.isfinite(array).all():
        raise CheckpointError(f"checkpoint {name} contain NaN or infinite values")
    return array


def _random_state(rng: Any) -> np.random.RandomState:
    if not isinstance(rng, dict):
        raise CheckpointError("checkpoint meta lacks the random generator state (rng)")
    key, pos = rng.get("key"), rng.get("pos")
    has_gauss, cached = rng.get("has_gauss"), rng.get("cached_gaussian")
    if not isinstance(key, list) or len(key) != _MT_KEY_LENGTH:
        length = len(key) if isinstance(key, list) else type(key).__name__
        raise CheckpointError(
            f"checkpoint rng key must be a list of {_MT_KEY_LENGTH} integers, got {length}"
        )
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _UINT32_MAX for v in key
    ):
        raise CheckpointError("checkpoint rng key values must be integers in 0..2**32-1")
    if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos <= _MT_KEY_LENGTH:
        raise CheckpointError(f"checkpoint rng pos must be in 0..{_MT_KEY_LENGTH}, got {pos!r}")
    if not isinstance(has_gauss, int) or isinstance(has_gauss, bool) or has_gauss not in (0, 1):
        raise CheckpointError(f"checkpoint rng has_gauss must be 0 or 1, got {has_gauss!r}")
    if not _is_number(cached) or not math.isfinite(cached):
        raise CheckpointError(f"checkpoint rng cached_gaussian must be finite, got {cached!r}")
    state = np.random.RandomState(0)  # seed is irrelevant: set_state overwrites it
    state.set_state(("MT19937", np.array(key, dtype=np.uint32), pos, has_gauss, float(cached)))
    return state
