"""Cluster explanations: c-TF-IDF keywords and representative items."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from app.clustering.labels import cluster_keywords, representative_items

SPACE = [
    "rocket launch to orbit tonight",
    "the rocket engine and orbit insertion",
    "astronaut crew boards the spacecraft",
    "watching the launch of the rocket with friends",
    "spacecraft docking at the orbital station",
]
COOKING = [
    "easy pasta recipe with garlic",
    "garlic bread recipe for dinner with friends",
    "slow cooked tomato sauce recipe",
    "baking bread and pasta at home",
    "dinner recipe with tomato and garlic",
]
SPACE_WORDS = set(re.findall(r"[a-z]{2,}", " ".join(SPACE)))
COOKING_WORDS = set(re.findall(r"[a-z]{2,}", " ".join(COOKING)))


def reference_ctfidf(texts_by_cluster: dict[int, list[str]], top_n: int) -> dict[int, list[str]]:
    """c-TF-IDF straight from its definition, with Counter instead of sklearn."""
    counts = {
        c: Counter(
            w
            for w in re.findall(r"\b[^\W\d_]{2,}\b", " ".join(texts).lower())
            if w not in ENGLISH_STOP_WORDS
        )
        for c, texts in texts_by_cluster.items()
    }
    f: Counter[str] = Counter()
    for counter in counts.values():
        f.update(counter)
    average = sum(sum(c.values()) for c in counts.values()) / len(counts)
    result = {}
    for c, counter in counts.items():
        total = sum(counter.values())
        weight = {t: n / total * math.log(1 + average / f[t]) for t, n in counter.items()}
        result[c] = sorted(weight, key=lambda t: (-weight[t], t))[:top_n]
    return result


def test_keywords_come_from_each_clusters_own_vocabulary() -> None:
    keywords = cluster_keywords({0: SPACE, 1: COOKING, 2: []}, top_n=4)
    assert len(keywords[0]) == 4 and len(keywords[1]) == 4
    assert set(keywords[0]) <= SPACE_WORDS - COOKING_WORDS
    assert set(keywords[1]) <= COOKING_WORDS - SPACE_WORDS
    assert keywords[0][0] == "rocket" and keywords[1][0] == "recipe"
    assert keywords[2] == []


def test_keywords_match_the_ctfidf_definition() -> None:
    texts = {0: SPACE, 1: COOKING, 5: SPACE[:2] + COOKING[:1]}
    assert cluster_keywords(texts, top_n=6) == reference_ctfidf(texts, 6)


def test_stop_words_digits_and_single_letters_are_not_keywords() -> None:
    keywords = cluster_keywords({0: ["the and of a x 2024 R2D2 rocket"], 1: ["the of it"]})
    assert keywords == {0: ["rocket"], 1: []}


def test_nothing_to_say() -> None:
    assert cluster_keywords({}) == {}
    assert cluster_keywords({0: [], 1: ["the of and"]}) == {0: [], 1: []}
    with pytest.raises(ValueError):
        cluster_keywords({0: SPACE}, top_n=0)


def test_representative_items_are_the_nearest_to_the_center() -> None:
    rng = np.random.default_rng(0)
    center = rng.standard_normal(8)
    radii = rng.permutation(np.linspace(0.1, 2.0, 20))
    directions = rng.standard_normal((20, 8))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    vectors = center + radii[:, None] * directions
    ids = [f"item-{i}" for i in range(20)]
    expected = [ids[i] for i in np.argsort(radii)[:5]]
    assert representative_items(center, ids, vectors) == expected
    assert representative_items(center, ids, vectors, top_n=50) == [
        ids[i] for i in np.argsort(radii)
    ]


def test_representative_items_check_their_input() -> None:
    assert representative_items(np.zeros(3), [], np.empty((0, 3))) == []
    with pytest.raises(ValueError):
        representative_items(np.zeros(3), ["a", "b"], np.zeros((3, 3)))
    with pytest.raises(ValueError):
        representative_items(np.zeros(4), ["a"], np.zeros((1, 3)))
