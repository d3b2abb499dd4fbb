"""Checkpoint codec for OnlineKMeans: JSON meta + raw little-endian arrays, nothing else."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import sklearn
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

from app.clustering.model import DTYPE, OnlineKMeans

CODEC_VERSION = 1
# Arrays are stored as little-endian float64 whatever the host byte order.
ARRAY_DTYPE = np.dtype(DTYPE).newbyteorder("<")
_MT_KEY_LENGTH = 624
_UINT32_MAX = 2**32 - 1


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
    est = model.estimator
    name, key, pos, has_gauss, cached_gaussian = est._random_state.get_state(legacy=True)
    if name != "MT19937":
        raise CheckpointError(f"unsupported random generator {name!r}")
    centers = np.ascontiguousarray(est.cluster_centers_, dtype=ARRAY_DTYPE)
    counts = np.ascontiguousarray(est._counts, dtype=ARRAY_DTYPE)
    meta: dict[str, Any] = {
        "codec_version": CODEC_VERSION,
        "embedding_model": embedding_model,
        "n_clusters": model.n_clusters,
        "n_features": model.n_features,
        "half_life": model.half_life,
        "batch_size": model.batch_size,
        "seed": model.seed,
        # sklearn state set on the first partial_fit and read by every later one
        "n_steps_": int(est.n_steps_),
        "_n_since_last_reassign": int(est._n_since_last_reassign),
        "_batch_size": int(est._batch_size),
        "_init_size": int(est._init_size),
        "n_features_in_": int(est.n_features_in_),
        "_tol": float(est._tol),
        "_n_init": int(est._n_init),
        "rng": {
            "key": [int(v) for v in key],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "centers": {"dtype": ARRAY_DTYPE.str, "shape": list(centers.shape)},
        "counts": {"dtype": ARRAY_DTYPE.str, "shape": list(counts.shape)},
        # informational: bit-exact resume is only promised on the same sklearn/numpy build
        "sklearn_version": sklearn.__version__,
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
    """Decode and validate a checkpoint into a model that resumes training bit-identically."""
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

    est = model.estimator
    est.cluster_centers_ = centers
    est._counts = counts
    est.n_steps_ = _int(meta, "n_steps_", minimum=1)
    # sklearn resets it to 0 once it reaches 10 * n_clusters, so a stored value is always below
    est._n_since_last_reassign = _int(meta, "_n_since_last_reassign", maximum=10 * n_clusters - 1)
    est._batch_size = _int(meta, "_batch_size", minimum=1, maximum=batch_size)
    est._init_size = _int(meta, "_init_size", minimum=1)
    est.n_features_in_ = _int(meta, "n_features_in_", minimum=n_features, maximum=n_features)
    tol = meta.get("_tol")
    if not _is_number(tol) or not math.isfinite(tol) or tol < 0:
        raise CheckpointError(f"checkpoint _tol must be a finite number >= 0, got {tol!r}")
    est._tol = float(tol)
    est._n_init = _int(meta, "_n_init", minimum=1)
    est._random_state = _random_state(meta.get("rng"))
    # Runtime properties, not training state: derived from this machine like partial_fit does.
    est._n_threads = _openmp_effective_n_threads()
    est._n_features_out = n_clusters
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
    array = np.frombuffer(raw, dtype=ARRAY_DTYPE).reshape(shape).astype(DTYPE, order="C")
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
