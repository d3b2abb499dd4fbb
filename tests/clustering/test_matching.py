"""Stable ids: a new generation's clusters keep the ids of the old clusters they continue."""

from __future__ import annotations

import numpy as np
import pytest

from app.clustering.matching import match_ids, transitions
from tests.clustering.synthetic import topic_centers


def test_unchanged_centres_in_another_order_keep_every_id() -> None:
    centers = topic_centers(np.random.default_rng(0), 8, 16)
    order = np.random.default_rng(1).permutation(8)
    old_ids = [10, 11, 12, 13, 14, 15, 16, 17]
    matching = match_ids(centers, old_ids, centers[order], next_id=18)
    assert matching.ids == [old_ids[i] for i in order]
    assert matching.born == [] and matching.ended == []


def test_slightly_moved_centres_keep_their_ids() -> None:
    rng = np.random.default_rng(2)
    centers = topic_centers(rng, 6, 32)
    moved = centers + rng.standard_normal(centers.shape) * 0.01
    matching = match_ids(centers, list(range(6)), moved[::-1], next_id=6)
    assert matching.ids == [5, 4, 3, 2, 1, 0]


def test_a_new_centre_far_from_its_forced_partner_gets_a_fresh_id() -> None:
    rng = np.random.default_rng(3)
    centers = topic_centers(rng, 4, 32)
    new = centers.copy()
    # old 3 vanished; a new cluster appeared next to old 0 (a split of 0): the optimal
    # assignment must pair it with 3, but its nearest old centre is 0, so it is not a
    # continuation of 3.
    new[3] = centers[0] + 0.05 * topic_centers(rng, 1, 32)[0]
    matching = match_ids(centers, [0, 1, 2, 3], new, next_id=7)
    assert matching.ids == [0, 1, 2, 7]
    assert matching.born == [7] and matching.ended == [3]


def test_more_new_centres_than_old_get_fresh_ids_never_reused() -> None:
    centers = topic_centers(np.random.default_rng(4), 5, 16)
    matching = match_ids(centers[:3], [0, 4, 9], centers, next_id=12)
    assert matching.ids[:3] == [0, 4, 9]
    assert matching.ids[3:] == [12, 13]


def test_fewer_new_centres_end_the_old_ids_they_lost() -> None:
    centers = topic_centers(np.random.default_rng(5), 5, 16)
    matching = match_ids(centers, [0, 1, 2, 3, 4], centers[[4, 1]], next_id=5)
    assert matching.ids == [4, 1]
    assert matching.ended == [0, 2, 3]


def test_next_id_may_not_reuse_an_old_id() -> None:
    centers = topic_centers(np.random.default_rng(6), 3, 8)
    with pytest.raises(ValueError, match="reuse"):
        match_ids(centers, [0, 1, 5], centers, next_id=5)


def test_transitions_find_a_split_and_a_merge() -> None:
    old = np.array([0] * 10 + [1] * 10 + [2] * 10)
    # old 0 splits 5/5 into 0 and 7; old 1 and 2 merge into 1
    new = np.array([0] * 5 + [7] * 5 + [1] * 10 + [1] * 9 + [0])
    found = transitions(old, new)
    assert found.splits == {0: [0, 7]}
    assert found.merges == {1: [1, 2]}
    assert found.moved_share == pytest.approx(15 / 30)


def test_no_transitions_when_nothing_moved() -> None:
    labels = np.array([3, 1, 2, 3, 1])
    found = transitions(labels, labels)
    assert found.splits == {} and found.merges == {} and found.moved_share == 0.0
