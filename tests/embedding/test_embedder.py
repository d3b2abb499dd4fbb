"""Embedder tests against the real bundled all-MiniLM-L6-v2 (no mocks, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.embedding import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_ID,
    Embedder,
    EmbedderError,
    SentenceTransformerEmbedder,
    load_embedder,
    text_hash,
)

# Batch composition changes padding length and which BLAS kernels run, so the same text can
# differ in the last float32 bits (~1e-7 relative) between batches; 1e-5 absolute on unit
# vectors is two orders above that noise and far below any semantic difference (~1e-1).
BATCH_ATOL = 1e-5

TEXTS = [
    "wireless noise cancelling headphones",
    "bluetooth over-ear headphones with long battery life",
    "organic sourdough bread recipe",
    "how to bake a crusty loaf of bread at home",
    "used mountain bike for sale",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder(DEFAULT_MODEL)


def test_dimension_and_id(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384
    assert embedder.model_id == DEFAULT_MODEL_ID


def test_rows_are_unit_float32(embedder: Embedder) -> None:
    out = embedder.encode(TEXTS)
    assert out.shape == (len(TEXTS), 384)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated(embedder: Embedder) -> None:
    phones, phones2, bread, bread2, bike = embedder.encode(TEXTS)
    assert phones @ phones2 > phones @ bread + 0.2
    assert phones @ phones2 > phones @ bike + 0.2
    assert bread @ bread2 > bread @ phones + 0.2
    assert bread @ bread2 > bread @ bike + 0.2


def test_same_text_same_vector_across_calls(embedder: Embedder) -> None:
    first = embedder.encode(TEXTS)
    second = embedder.encode(TEXTS)
    np.testing.assert_array_equal(first, second)


def test_same_text_same_vector_across_batch_compositions(embedder: Embedder) -> None:
    alone = np.vstack([embedder.encode([t]) for t in TEXTS])
    together = embedder.encode(TEXTS)
    long_text = "a much longer sentence that forces more padding " * 10
    mixed = embedder.encode([long_text, *reversed(TEXTS), "x"])[1:-1][::-1]
    np.testing.assert_allclose(together, alone, atol=BATCH_ATOL, rtol=0)
    np.testing.assert_allclose(mixed, alone, atol=BATCH_ATOL, rtol=0)


def test_batches_larger_than_batch_size_keep_input_order() -> None:
    small = load_embedder(DEFAULT_MODEL)
    reference = small.encode(TEXTS)
    tiny = SentenceTransformerEmbedder(DEFAULT_MODEL, batch_size=2)
    np.testing.assert_allclose(tiny.encode(TEXTS), reference, atol=BATCH_ATOL, rtol=0)


def test_empty_input_returns_empty_array(embedder: Embedder) -> None:
    out = embedder.encode([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_single_str_is_rejected(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.encode("not a list")  # type: ignore[arg-type]


def test_load_embedder_is_cached(embedder: Embedder) -> None:
    assert load_embedder(DEFAULT_MODEL) is embedder
    assert load_embedder(DEFAULT_MODEL_ID) is embedder


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="no-such-model"):
        load_embedder(str(tmp_path / "no-such-model"))


def test_directory_without_model_raises(tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(EmbedderError, match="empty-model"):
        SentenceTransformerEmbedder(str(empty))


def test_text_hash_is_stable_and_distinct() -> None:
    h = text_hash("héllo wörld")
    assert len(h) == 32
    assert h == text_hash("héllo wörld")
    assert h != text_hash("hello world")
    assert text_hash("") != text_hash(" ")
    # Pinned: the hash is a persisted cache key, so it must never change.
    assert text_hash("abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
