"""Text embedding: the narrow embedder interface and its sentence-transformers implementation."""

from app.embedding.embedder import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_ID,
    Embedder,
    EmbedderError,
    SentenceTransformerEmbedder,
    load_embedder,
    text_hash,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_ID",
    "Embedder",
    "EmbedderError",
    "SentenceTransformerEmbedder",
    "load_embedder",
    "text_hash",
]
