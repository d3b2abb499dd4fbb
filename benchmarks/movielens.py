"""MovieLens (ml-latest-small) as a client would send it: item texts and rating events.

The one loader of this data set. Each movie's text is "title — genres" with the genres joined
by ", " (the file's "(no genres listed)" is left out): natural language for the sentence
encoder rather than the CSV's `|` separators. A rating >= 4.0 is a `like`, <= 2.0 a `dislike`,
anything between a `view`.
"""

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

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.time, UTC)


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


def item_texts(data_dir: Path) -> dict[str, str]:
    """movieId -> "title — genres"."""
    with (data_dir / "movies.csv").open(encoding="utf-8", newline="") as f:
        return {
            row["movieId"]: movie_text(row["title"], row["genres"]) for row in csv.DictReader(f)
        }


def movie_text(title: str, genres: str) -> str:
    if genres == "(no genres listed)":
        return title
    return f"{title} — {genres.replace('|', ', ')}"


def ratings(data_dir: Path) -> list[Rating]:
    """Every rating in time order (ties by user id, then movie id)."""
    with (data_dir / "ratings.csv").open(encoding="utf-8", newline="") as f:
        rows = [
            Rating(row["userId"], row["movieId"], float(row["rating"]), int(row["timestamp"]))
            for row in csv.DictReader(f)
        ]
    rows.sort(key=_time_order)
    return rows


def load(data_dir: Path) -> MovieLens:
    """Texts, and each user's ratings split by time (ties broken by movie id): the first
    TRAIN_SHARE are history, the rest held out."""
    per_user: dict[str, list[Rating]] = defaultdict(list)
    for r in ratings(data_dir):
        per_user[r.user].append(r)
    train, test, cutoff = [], {}, {}
    for user, rs in per_user.items():
        rs.sort(key=lambda r: (r.time, int(r.movie)))
        n_train = int(len(rs) * TRAIN_SHARE)
        train.extend(rs[:n_train])
        test[user] = rs[n_train:]
        cutoff[user] = rs[n_train - 1].time
    train.sort(key=_time_order)
    return MovieLens(item_texts(data_dir), train, test, cutoff, _history_tags(data_dir, cutoff))


def _time_order(r: Rating) -> tuple[int, int, int]:
    return r.time, int(r.user), int(r.movie)


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
    """The rating as a `POST /v1/events` event."""
    return {
        "event_id": f"ml-{r.user}-{r.movie}",
        "user_id": r.user,
        "type": r.event_type,
        "item_id": r.movie,
        "timestamp": r.occurred_at.isoformat(),
    }


def event_row(r: Rating) -> dict[str, object]:
    """The same event as an `event` table row, for seeding (see seed.events)."""
    return {
        "event_id": f"ml-{r.user}-{r.movie}",
        "user_id": r.user,
        "type": r.event_type,
        "item_id": r.movie,
        "occurred_at": r.occurred_at,
    }
