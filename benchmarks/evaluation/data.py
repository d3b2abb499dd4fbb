"""MovieLens (ml-latest-small) as a client would send it: item texts and time-ordered events."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

LIKE_MIN = 4.0  # rating >= 4.0 is a like (and a relevant held-out item)
DISLIKE_MAX = 2.0  # rating <= 2.0 is a dislike; everything between is a view
TRAIN_SHARE = 0.8  # each user's first 80% of ratings by time are history
MAX_TAGS = 10  # per movie, the most used ones


@dataclass(frozen=True)
class Rating:
    user: str
    movie: str
    rating: float
    time: int  # epoch seconds

    @property
    def liked(self) -> bool:
        return self.rating >= LIKE_MIN

    @property
    def event_type(self) -> str:
        if self.rating >= LIKE_MIN:
            return "like"
        if self.rating <= DISLIKE_MAX:
            return "dislike"
        return "view"


@dataclass
class MovieLens:
    titles: dict[str, str]  # movie -> "title — genres"
    train: list[Rating]  # every user's history, all users merged in time order
    test: dict[str, list[Rating]]  # user -> held-out ratings
    cutoff: dict[str, int] = field(default_factory=dict)  # user -> time of last history rating
    tags: dict[str, list[str]] = field(default_factory=dict)  # movie -> tags (history only)

    def item_texts(self, *, with_tags: bool) -> dict[str, str]:
        if not with_tags:
            return dict(self.titles)
        return {
            m: f"{t} — tags: {', '.join(self.tags[m])}" if self.tags.get(m) else t
            for m, t in self.titles.items()
        }

    def seen(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for r in self.train:
            out[r.user].add(r.movie)
        return out

    def held_out_likes(self) -> dict[str, set[str]]:
        return {u: {r.movie for r in rs if r.liked} for u, rs in self.test.items()}


def load(data_dir: Path) -> MovieLens:
    """Read the CSVs and split each user's ratings by time (ties broken by movie id)."""
    titles = {}
    with (data_dir / "movies.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            titles[row["movieId"]] = movie_text(row["title"], row["genres"])
    per_user: dict[str, list[Rating]] = defaultdict(list)
    with (data_dir / "ratings.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            per_user[row["userId"]].append(
                Rating(row["userId"], row["movieId"], float(row["rating"]), int(row["timestamp"]))
            )
    train, test, cutoff = [], {}, {}
    for user, ratings in per_user.items():
        ratings.sort(key=lambda r: (r.time, int(r.movie)))
        n_train = int(len(ratings) * TRAIN_SHARE)
        train.extend(ratings[:n_train])
        test[user] = ratings[n_train:]
        cutoff[user] = ratings[n_train - 1].time
    train.sort(key=lambda r: (r.time, int(r.user), int(r.movie)))
    return MovieLens(titles, train, test, cutoff, _history_tags(data_dir, cutoff))


def movie_text(title: str, genres: str) -> str:
    if genres == "(no genres listed)":
        return title
    return f"{title} — {genres.replace('|', ', ')}"


def _history_tags(data_dir: Path, cutoff: dict[str, int]) -> dict[str, list[str]]:
    """Tags a user applied before their held-out period: no tag leaks from the test set."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    with (data_dir / "tags.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if int(row["timestamp"]) <= cutoff.get(row["userId"], -1):
                counts[row["movieId"]][row["tag"].strip().lower()] += 1
    return {
        m: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TAGS]]
        for m, c in counts.items()
    }


def event_json(r: Rating) -> dict[str, object]:
    return {
        "event_id": f"ml-{r.user}-{r.movie}",
        "user_id": r.user,
        "type": r.event_type,
        "item_id": r.movie,
        "timestamp": datetime.fromtimestamp(r.time, UTC).isoformat(),
    }


def chunks(train: list[Rating], n: int) -> list[list[Rating]]:
    """n time-ordered chunks of (nearly) equal size: the replay's steps."""
    size = -(-len(train) // n)
    return [train[i : i + size] for i in range(0, len(train), size)]
