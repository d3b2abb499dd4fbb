"""Drift: MovieLens users made to switch genre family part-way, replayed through the API.

After the history replay, a seeded quarter of the users with a clear favourite family of genres
switch to the family they liked least: 90 days after their last history rating they like as
many movies of that family as their history has ratings (20 to 100), most popular first. The
switch is sent in DRIFT_CHUNKS chunks; after each, every switched user is asked for their
cluster over HTTP. A switched user is "found" when their cluster's majority family (over the
users who did not switch, labelled the same way) is the family they switched to. Exact
KMeans(n_init=10) on the service's own profiles at the same moment is scored by the same rule.

Run by `.venv/bin/python -m benchmarks.evaluate_movielens DATA_DIR --drift` after its replay.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from benchmarks.evaluation import offline
from benchmarks.movielens import MovieLens, Rating, event_json
from benchmarks.service import Client

FAMILIES = {
    "action": {"Action", "Adventure", "Sci-Fi", "War", "Western"},
    "light": {"Animation", "Children", "Comedy", "Fantasy", "Musical", "Romance"},
    "dark": {"Crime", "Film-Noir", "Horror", "Mystery", "Thriller"},
}
CLEAR = 0.5  # a user's favourite family holds at least this share of their family likes
SWITCH_SHARE = 0.25  # of users with a favourite family
DELAY_S = 90 * 86_400  # after the user's last history rating
DRIFT_CHUNKS = 4
LIKES = (20, 100)  # new likes per switched user: their history size, clipped to this


def movie_family(genres: set[str]) -> str | None:
    """The family all of a movie's genres belong to (Drama/Documentary/IMAX ignored)."""
    relevant = genres - {"Drama", "Documentary", "IMAX"}
    homes = {f for f, members in FAMILIES.items() if relevant & members}
    return homes.pop() if len(homes) == 1 else None


def families(ml: MovieLens) -> dict[str, str]:
    out = {}
    for movie, text in ml.titles.items():
        _, _, genres = text.rpartition(" — ")
        family = movie_family(set(genres.split(", "))) if genres else None
        if family:
            out[movie] = family
    return out


def favourites(ml: MovieLens, family_of: dict[str, str]) -> dict[str, str]:
    """Each user's clear favourite family by history likes (users without one are left out)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in ml.train:
        if r.liked and r.movie in family_of:
            counts[r.user][family_of[r.movie]] += 1
    out = {}
    for user, c in counts.items():
        family, top = c.most_common(1)[0]
        if top >= CLEAR * sum(c.values()):
            out[user] = family
    return out


def plan(ml: MovieLens, *, seed: int) -> dict[str, Any]:
    """Who switches to what, and the like events they send, in DRIFT_CHUNKS time-ordered chunks."""
    family_of = families(ml)
    favourite = favourites(ml, family_of)
    likes = Counter(r.movie for r in ml.train if r.liked)
    popular = {
        f: sorted((m for m in family_of if family_of[m] == f), key=lambda m: (-likes[m], int(m)))
        for f in FAMILIES
    }
    rng = np.random.default_rng(seed)
    users = sorted(favourite, key=int)
    switched = sorted(
        rng.choice(users, size=round(SWITCH_SHARE * len(users)), replace=False), key=int
    )
    history: dict[str, list[Rating]] = defaultdict(list)
    for r in ml.train:
        history[r.user].append(r)
    per_user: dict[str, str] = {}
    chunks: list[list[dict[str, object]]] = [[] for _ in range(DRIFT_CHUNKS)]
    for user in switched:
        liked = Counter(family_of[r.movie] for r in history[user] if r.movie in family_of)
        target = min(FAMILIES, key=lambda f: (liked[f], f))  # the family they liked least
        per_user[user] = target
        seen = {r.movie for r in history[user]}
        movies = [m for m in popular[target] if m not in seen]
        n = min(max(len(history[user]), LIKES[0]), LIKES[1], len(movies))
        start = history[user][-1].time + DELAY_S
        for i, movie in enumerate(movies[:n]):
            rating = Rating(user, movie, 5.0, start + 60 * i)  # one a minute
            event = event_json(rating) | {"event_id": f"drift-{user}-{movie}"}
            chunks[i * DRIFT_CHUNKS // n].append(event)
    return {"switched": per_user, "favourite": favourite, "chunks": chunks}


def found_share(
    cluster_of: dict[str, int], favourite: dict[str, str], switched: dict[str, str]
) -> float:
    """Share of switched users whose cluster's majority family (among users who did not
    switch) is the family they switched to."""
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    for user, family in favourite.items():
        if user not in switched and user in cluster_of:
            votes[cluster_of[user]][family] += 1
    majority = {c: v.most_common(1)[0][0] for c, v in votes.items()}
    hits = [majority.get(cluster_of.get(u, -1)) == f for u, f in switched.items()]
    return float(np.mean(hits)) if hits else 0.0


def run(
    client: Client, ml: MovieLens, *, k: int, seed: int, database_url: str, settle: float
) -> dict[str, Any]:
    """Send the switch chunk by chunk; after each, the found share of the service and of exact
    KMeans on the service's profiles at that moment."""
    p = plan(ml, seed=seed)
    switched, favourite = p["switched"], p["favourite"]
    steps = []
    for i, events in enumerate(p["chunks"]):
        client.post_events(events)
        final = client.wait_final_model(settle=settle)
        answers = {u: client.cluster(u) for u in favourite}
        service = {u: a["cluster_id"] for u, a in answers.items() if a["status"] == "assigned"}
        held = offline.service_profiles(database_url, _dimension(database_url))
        users = sorted(held, key=int)
        exact = offline.exact_kmeans(np.stack([held[u] for u in users]), k, seed=seed)
        exact_of = dict(zip(users, (int(c) for c in exact["labels"]), strict=True))
        steps.append(
            {
                "chunk": i + 1,
                "events": len(events),
                "model_version": final["model_version"],
                "service_found": found_share(service, favourite, switched),
                "exact_found": found_share(exact_of, favourite, switched),
            }
        )
        print(
            f"  drift chunk {i + 1}/{len(p['chunks'])}: service {steps[-1]['service_found']:.3f}"
            f" exact {steps[-1]['exact_found']:.3f} (v{final['model_version']})",
            flush=True,
        )
    return {
        "switched": len(switched),
        "with_favourite": len(favourite),
        "targets": dict(Counter(switched.values())),
        "steps": steps,
    }


def _dimension(database_url: str) -> int:
    """The embedding dimension, from one cached vector."""
    from app.db.models import Embedding
    from app.db.session import Database

    db = Database(database_url)
    try:
        with db.read() as session:
            blob = session.query(Embedding.vector).limit(1).scalar()
    finally:
        db.dispose()
    return len(np.frombuffer(blob, dtype="<f4"))
