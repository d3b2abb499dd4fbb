"""Explanations of clusters: c-TF-IDF keywords and representative items."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

# Words of two or more letters: no digits, no underscores, no single letters.
_TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


def cluster_keywords(
    texts_by_cluster: dict[int, list[str]], *, top_n: int = 8
) -> dict[int, list[str]]:
    """Top terms per cluster by class-based TF-IDF (BERTopic's c-TF-IDF)."""
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    result: dict[int, list[str]] = {cluster: [] for cluster in texts_by_cluster}
    # One document per cluster: c-TF-IDF scores terms by class, not by individual text.
    clusters = [c for c, texts in texts_by_cluster.items() if texts]
    documents = [" ".join(texts_by_cluster[c]) for c in clusters]
    if not documents:
        return result
    vectorizer = CountVectorizer(
        stop_words="english", token_pattern=_TOKEN_PATTERN, ngram_range=(1, 1)
    )
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # nothing but stop words and punctuation
        return result
    terms = vectorizer.get_feature_names_out()

    words_per_class = counts.sum(axis=1)
    average_words = words_per_class[words_per_class > 0].mean()
    term_frequency = counts.sum(axis=0)  # f_t: frequency of t across all classes
    idf = np.log1p(average_words / term_frequency)
    # tf is L1-normalised per class as in BERTopic; it does not change a class's ranking
    tf = np.divide(
        counts,
        words_per_class[:, None],
        out=np.zeros_like(counts),
        where=words_per_class[:, None] > 0,
    )
    weights = tf * idf[None, :]

    for row, cluster in enumerate(clusters):
        scores = weights[row]
        # highest weight first, ties broken alphabetically so the answer is deterministic
        order = np.lexsort((terms, -scores))
        result[cluster] = [str(terms[i]) for i in order[:top_n] if scores[i] > 0]
    return result


def representative_items(
    center: np.ndarray, item_ids: list[str], item_vectors: np.ndarray, *, top_n: int = 5
) -> list[str]:
    """Ids of the items whose vectors lie nearest the center, nearest first."""
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    vectors = np.asarray(item_vectors, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    if len(item_ids) == 0:
        return []
    if vectors.ndim != 2 or vectors.shape[0] != len(item_ids):
        raise ValueError(
            f"item_vectors shape {vectors.shape} does not match {len(item_ids)} item ids"
        )
    if center.shape != (vectors.shape[1],):
        raise ValueError(f"center shape {center.shape} does not match {vectors.shape[1]} features")
    diff = vectors - center[None, :]
    distances = np.einsum("ij,ij->i", diff, diff)
    # stable sort: equally near items keep their input order
    nearest = np.argsort(distances, kind="stable")[:top_n]
    return [item_ids[i] for i in nearest]
