"""Stable cluster ids: which clusters of a new generation continue which old ones.

A cluster id is a public name, not a row index: the model keeps `ids[i]` for its centre i. When a
new generation replaces the centres (a refit or a recluster), each new centre is matched to at
most one old centre by an optimal assignment on the distances between centres (the Hungarian
method), and takes that old id when it continues it. Everything else gets a fresh id, never one
used before, so an id always names one continuing group of users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

SPLIT_SHARE = 0.3  # an old cluster split when >= 2 new clusters each took this share of it
MERGE_SHARE = 0.5  # a new cluster merged old ones when it took this share of each of >= 2


@dataclass(frozen=True)
class Matching:
    ids: list[int]  # the id of each new centre, in centre order
    born: list[int]  # ids new in this generation
    ended: list[int]  # old ids no new centre continues


def match_ids(
    old_centers: np.ndarray, old_ids: list[int], new_centers: np.ndarray, *, next_id: int
) -> Matching:
    """Give each new centre the id of the old centre it continues, or a fresh one from next_id.

    A new centre continues old centre i when the optimal one-to-one assignment (minimum total
    squared distance) pairs them AND i is the old centre nearest to it: a pair forced together
    only because nothing better was left (a cluster that vanished, one that appeared far away)
    is not a continuation. With unchanged data every centre is paired with itself: no id moves.
    """
    old = np.asarray(old_centers, dtype=np.float64)
    new = np.asarray(new_centers, dtype=np.float64)
    if old.ndim != 2 or new.ndim != 2 or old.shape[1] != new.shape[1]:
        raise ValueError(f"centres must be (k, d) with the same d, got {old.shape}, {new.shape}")
    if len(old_ids) != len(old):
        raise ValueError(f"{len(old_ids)} ids for {len(old)} old centres")
    if next_id <= max(old_ids, default=-1):
        raise ValueError(f"next_id {next_id} would reuse an old id")
    cost = _squared_distances(new, old)
    rows, cols = linear_sum_assignment(cost)
    nearest_old = cost.argmin(axis=1) if len(old) else np.empty(0, dtype=np.int64)
    ids: list[int | None] = [None] * len(new)
    for r, c in zip(rows, cols, strict=True):
        if nearest_old[r] == c:
            ids[r] = old_ids[c]
    born = []
    for r in range(len(new)):
        if ids[r] is None:
            ids[r] = next_id
            born.append(next_id)
            next_id += 1
    final = [int(i) for i in ids if i is not None]
    kept = set(final) - set(born)
    return Matching(
        ids=final,
        born=born,
        ended=[i for i in old_ids if i not in kept],
    )


@dataclass(frozen=True)
class Transitions:
    splits: dict[int, list[int]]  # old id -> the new ids it split into
    merges: dict[int, list[int]]  # new id -> the old ids merged into it
    moved_share: float  # users whose id differs between the two labelings


def transitions(old_labels: np.ndarray, new_labels: np.ndarray) -> Transitions:
    """Splits and merges seen in how the same users are labelled (by id) before and after.

    An old cluster split when at least two new clusters each took SPLIT_SHARE of its members; a
    new cluster is a merge when it took MERGE_SHARE of the members of at least two old ones."""
    old_labels = np.asarray(old_labels)
    new_labels = np.asarray(new_labels)
    if old_labels.shape != new_labels.shape:
        raise ValueError("both labelings must cover the same users")
    if not len(old_labels):
        return Transitions({}, {}, 0.0)
    old_u, old_inv = np.unique(old_labels, return_inverse=True)
    new_u, new_inv = np.unique(new_labels, return_inverse=True)
    table = np.zeros((len(old_u), len(new_u)), dtype=np.int64)
    np.add.at(table, (old_inv, new_inv), 1)
    share_of_old = table / table.sum(axis=1, keepdims=True)
    splits = {
        int(old_u[a]): [int(new_u[b]) for b in np.flatnonzero(share_of_old[a] >= SPLIT_SHARE)]
        for a in range(len(old_u))
        if (share_of_old[a] >= SPLIT_SHARE).sum() >= 2
    }
    merges = {
        int(new_u[b]): [int(old_u[a]) for a in np.flatnonzero(share_of_old[:, b] >= MERGE_SHARE)]
        for b in range(len(new_u))
        if (share_of_old[:, b] >= MERGE_SHARE).sum() >= 2
    }
    moved = float(np.mean(old_labels != new_labels))
    return Transitions(splits, merges, moved)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a[:, None, :] - b[None, :, :]
    return np.asarray(np.einsum("ijk,ijk->ij", diff, diff))
