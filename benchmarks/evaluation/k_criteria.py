"""Which k, and when to fit first: criteria measured on MovieLens's final profiles, offline.

    .venv/bin/python -m benchmarks.evaluation.k_criteria DATA_DIR \
        [--database-url sqlite:///benchmarks/out/runs/k8-hl30/app.db]

Per candidate k: the recall@20 lift of exact KMeans (n_init=3, mean over 5 seeds: what the
criterion should find), the silhouette, the simplified silhouette, Calinski-Harabasz,
Davies-Bouldin, stability (ARI of fits on two random halves, 5 pairs), a gap statistic with a
feature-permutation reference, and the service's own k report (app.clustering.k_selection) over
3 seeds. Then the first-fit rule: held-out inertia of a model fitted on m members per cluster,
relative to one fitted on every user. The movie vectors come from the embedding cache of
--database-url (any run's database) where it has them, else from the embedder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from app.clustering.k_selection import CANDIDATES, score_k
from app.clustering.metrics import simplified_silhouette
from app.config import load_settings
from benchmarks import movielens
from benchmarks.evaluation import offline
from benchmarks.evaluation.recommend import recall_at_k


def criteria(X: np.ndarray, lift_of, k: int) -> str:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = len(X)
    fits = [KMeans(k, n_init=3, random_state=seed).fit(X) for seed in range(5)]
    lifts = [lift_of(f.labels_) for f in fits]
    labels = fits[0].labels_
    distances = fits[0].transform(X)
    aris = []
    for b in range(5):
        order = rng.permutation(n)
        a = KMeans(k, n_init=2, random_state=b).fit(X[order[: n // 2]])
        c = KMeans(k, n_init=2, random_state=b + 100).fit(X[order[n // 2 :]])
        aris.append(adjusted_rand_score(a.predict(X), c.predict(X)))
    gaps = []
    for b in range(3):
        g = np.random.default_rng(b)
        Z = np.column_stack([g.permutation(X[:, j]) for j in range(X.shape[1])])
        Z /= np.linalg.norm(Z, axis=1, keepdims=True)
        gaps.append(np.log(KMeans(k, n_init=2, random_state=0).fit(Z).inertia_))
    gap = np.mean(gaps) - np.log(fits[0].inertia_)
    return (
        f"| {k} | {np.mean(lifts):.3f} ± {np.std(lifts):.3f} | {silhouette_score(X, labels):.3f} "
        f"| {simplified_silhouette(distances, labels):.3f} "
        f"| {calinski_harabasz_score(X, labels):.1f} | {davies_bouldin_score(X, labels):.2f} "
        f"| {np.mean(aris):.3f} | {gap:.3f} |"
    )


def first_fit(X: np.ndarray) -> None:
    print("\n| k | members per cluster | users | held-out inertia / fitted on everyone |")
    print("|---|---|---|---|")
    for k in (4, 8, 16):
        for m in (2, 5, 10, 20, 40):
            if m * k >= len(X) - 100:
                continue
            ratios = []
            for seed in range(5):
                order = np.random.default_rng(seed).permutation(len(X))
                fit, rest = order[: m * k], order[m * k :]
                small = KMeans(k, n_init=3, random_state=seed).fit(X[fit])
                full = KMeans(k, n_init=3, random_state=seed).fit(X)
                ratios.append(small.score(X[rest]) / full.score(X[rest]))
            print(
                f"| {k} | {m} | {m * k} | {np.mean(ratios):.3f} "
                f"({np.min(ratios):.3f}-{np.max(ratios):.3f}) |",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_dir", type=Path, help="the ml-latest-small folder")
    p.add_argument("--database-url", help="a database whose embedding cache holds the movies")
    args = p.parse_args()
    ml = movielens.load(args.data_dir)
    vectors = offline.item_vectors(ml.item_texts(with_tags=False), args.database_url)
    users, X = offline.profiles(ml.train, vectors, load_settings())
    seen, relevant = ml.seen(), ml.held_out_likes()
    popularity = recall_at_k(ml.train, seen, relevant, None)["recall"]

    def lift_of(labels: np.ndarray) -> float:
        cluster_of = dict(zip(users, (int(c) for c in labels), strict=True))
        return recall_at_k(ml.train, seen, relevant, cluster_of)["recall"] / popularity

    print("| k | exact lift (5 seeds) | silhouette | simplified | CH | DB | stability | gap |")
    print("|---|---|---|---|---|---|---|---|")
    for k in CANDIDATES:
        print(criteria(X, lift_of, k), flush=True)
    for seed in range(3):
        report = score_k(X, seed=seed)
        cv = " ".join(
            f"{c.k}:{c.held_out_inertia:.4f}±{c.standard_error:.4f}" for c in report.candidates
        )
        print(f"\nk report, seed {seed}: chose {report.best}; {cv}\n  {report.reason}", flush=True)
    first_fit(X)


if __name__ == "__main__":
    main()
