"""The map's projection: clusters apart in the embedding space are apart on the map."""

from __future__ import annotations

import numpy as np
import pytest

from app.clustering.projection import project
from tests.clustering.synthetic import normalise, topic_centers

DIM = 384


def clustered(k: int, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, users, labels): n unit vectors scattered around k random unit centres."""
    rng = np.random.default_rng(seed)
    centers = topic_centers(rng, k, DIM).astype(np.float64)
    labels = rng.integers(0, k, size=n)
    users = normalise(centers[labels] + 0.5 * rng.standard_normal((n, DIM)) / np.sqrt(DIM))
    return centers, users.astype(np.float64), labels


def nearest_on_map(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.argmin(np.square(points[:, None, :] - centers[None, :, :]).sum(axis=2), axis=1)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_users_lie_nearest_their_own_centre_on_the_map(k):
    centers, users, labels = clustered(k, 600)
    sizes = np.bincount(labels, minlength=k)
    result = project(centers, sizes, users, labels)
    assert result.centers.shape == (k, 2) and result.points.shape == (600, 2)
    assert np.isfinite(result.points).all()
    # Separated clusters stay separated: most users are drawn nearest their own centre. With
    # k centres in 384-d a plane cannot keep all of them apart, so the bar is a majority.
    agreement = float(np.mean(nearest_on_map(result.points, result.centers) == labels))
    assert agreement > (0.99 if k <= 3 else 0.6), agreement
    # Both axes are used: the points are not on a line, even with two centres.
    assert (result.points.std(axis=0) > 1e-3).all()


def test_three_centres_fit_a_plane_exactly_and_more_do_not():
    three, _, _ = clustered(3, 10)
    assert project(three, np.ones(3), np.empty((0, DIM)), np.empty(0)).explained == (
        pytest.approx(1.0)
    )
    eight, _, _ = clustered(8, 10)
    assert 0.2 < project(eight, np.ones(8), np.empty((0, DIM)), np.empty(0)).explained < 0.9


def test_the_orientation_depends_on_the_model_not_on_how_the_svd_comes_out():
    centers, users, labels = clustered(4, 200)
    sizes = np.bincount(labels, minlength=4)
    first = project(centers, sizes, users, labels)
    # The same clusters listed in another order: the SVD's signs come out differently, and
    # without a sign rule the map would mirror.
    order = np.array([3, 2, 1, 0])
    reordered = project(centers[order], sizes[order], users, np.argsort(order)[labels])
    np.testing.assert_allclose(reordered.centers, first.centers[order], atol=1e-9)
    np.testing.assert_allclose(reordered.points, first.points, atol=1e-9)
    # A slightly moved model (the next version) keeps the map's orientation.
    moved = centers + 1e-3 * np.random.default_rng(1).standard_normal(centers.shape)
    nudged = project(moved, sizes, users, labels)
    np.testing.assert_allclose(nudged.centers, first.centers, atol=0.02)


def test_bigger_clusters_pull_the_map_centre_towards_them():
    centers, users, labels = clustered(3, 30)
    even = project(centers, np.array([10, 10, 10]), users, labels)
    heavy = project(centers, np.array([1000, 10, 10]), users, labels)
    # The origin is the size-weighted mean: a heavy cluster sits nearer it.
    assert np.linalg.norm(heavy.centers[0]) < np.linalg.norm(even.centers[0])


def test_identical_centres_still_give_a_finite_map():
    centers = np.tile(normalise(np.ones((1, DIM))).astype(np.float64), (3, 1))
    result = project(centers, np.array([5, 0, 2]), np.empty((0, DIM)), np.empty(0))
    assert np.isfinite(result.centers).all() and result.explained == 1.0


def test_sizes_must_match_the_centres():
    centers, users, labels = clustered(3, 10)
    with pytest.raises(ValueError, match="sizes"):
        project(centers, np.ones(2), users, labels)
