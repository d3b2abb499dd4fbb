"""The benchmarks' MovieLens loader and the simulator that runs the app's own pipeline."""

from __future__ import annotations

from pathlib import Path

from app.config import load_settings
from app.embedding.embedder import Embedder
from benchmarks import movielens
from benchmarks.evaluation.simulate import simulate

DAY = 86_400


def write_movielens(folder: Path, ratings: list[tuple[int, int, float, int]]) -> Path:
    """A tiny data set in ml-latest-small's file format."""
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation\n"
        '2,"Alien (1979)",Horror|Sci-Fi\n'
        "3,Unknown (2000),(no genres listed)\n"
        "4,Apollo 13 (1995),Drama\n",
        encoding="utf-8",
    )
    rows = "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in ratings)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + rows)
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n1,1,Pixar,1\n1,2,scary,999999999\n"
    )
    return folder


def test_loader_texts_types_split_and_leak_free_tags(tmp_path: Path) -> None:
    ratings = [(1, 4, 3.0, 5 * DAY), (1, 1, 4.5, DAY), (1, 2, 2.0, 2 * DAY), (1, 3, 3.5, 3 * DAY)]
    ratings += [(2, 3, 4.0, 6 * DAY), (2, 1, 5.0, 4 * DAY)]
    ml = movielens.load(write_movielens(tmp_path, ratings))

    assert ml.titles == {
        "1": "Toy Story (1995) — Adventure, Animation",
        "2": "Alien (1979) — Horror, Sci-Fi",
        "3": "Unknown (2000)",
        "4": "Apollo 13 (1995) — Drama",
    }
    # Each user's first 80% by time are history; every user's history merged in time order.
    assert [(r.user, r.movie) for r in ml.train] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1")]
    assert {u: [r.movie for r in rs] for u, rs in ml.test.items()} == {"1": ["4"], "2": ["3"]}
    assert [r.event_type for r in ml.train] == ["like", "dislike", "view", "like"]
    assert ml.held_out_likes() == {"1": set(), "2": {"3"}}
    # Only tags applied before the user's held-out period reach the item texts.
    assert (
        ml.item_texts(with_tags=True)["1"]
        == "Toy Story (1995) — Adventure, Animation — tags: pixar"
    )
    assert ml.item_texts(with_tags=True)["2"] == "Alien (1979) — Horror, Sci-Fi"
    event = movielens.event_json(ml.train[0])
    assert event == {
        "event_id": "ml-1-1",
        "user_id": "1",
        "type": "like",
        "item_id": "1",
        "timestamp": "1970-01-02T00:00:00+00:00",
    }


def test_simulator_trains_consolidates_and_reclusters_with_the_app(
    tmp_path: Path, embedder: Embedder
) -> None:
    # Two tastes, interleaved in time: odd users rate movies 1 then 4, even users 2 then 3
    # (each user's first rating is history, the second held out).
    ratings = [
        (u, m, 5.0, (u * 10 + i) * 60)
        for u in range(1, 25)
        for i, m in enumerate((1, 4) if u % 2 else (2, 3))
    ]
    ml = movielens.load(write_movielens(tmp_path, ratings))
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'sim.db'}",
        worker="off",
        clusters=2,
        min_users_first_fit=10,
        batch_size=8,
        consolidate_interval_seconds=0,
    )

    result = simulate(ml, embedder, settings, n_chunks=4, recluster=True)

    assert len(result["users"]) == 24 and result["X"].shape == (24, embedder.dim)
    assert result["rows"] >= 24  # every user's profile was trained at least once
    for model in ("stream", "recluster"):
        cluster = dict(zip(result["users"], result[model]["labels"], strict=True))
        odd = {cluster[u] for u in result["users"] if int(u) % 2}
        even = {cluster[u] for u in result["users"] if not int(u) % 2}
        assert len(odd) == len(even) == 1 and odd != even, model  # the two tastes apart
    # Deterministic: no timing in the loop, so a second run gives the same model.
    again = simulate(ml, embedder, settings, n_chunks=4, recluster=True)
    assert again["stream"]["quality"]["inertia"] == result["stream"]["quality"]["inertia"]
