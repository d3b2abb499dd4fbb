"""A small site: 300 MovieLens users, k=8, every other setting at its default, through the API.

    .venv/bin/python -m benchmarks.evaluation.small_site DATA_DIR [--users 300]

Starts `python -m app serve` on a fresh SQLite file whose embedding cache already holds the
movie texts' vectors (so the time measured is the pipeline's, not the encoder's), posts the
catalogue and the history of the first N users in one go, and polls GET /v1/users/{id}/cluster
for all of them until every one is assigned: the seconds from the last accepted POST to that
moment, and the pending reasons seen on the way. Before issue 11 the first model waited for
3,000 users.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from benchmarks import movielens
from benchmarks.evaluate_movielens import warm_database
from benchmarks.service import Client, Service

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--out", type=Path, default=HERE / "out")
    args = p.parse_args()
    ml = movielens.load(args.data_dir)
    users = sorted({r.user for r in ml.train}, key=int)[: args.users]
    chosen = set(users)
    events = [movielens.event_json(r) for r in ml.train if r.user in chosen]
    run_dir = args.out / "runs" / f"small-site-{args.users}"
    texts = ml.item_texts(with_tags=False)
    url = warm_database(run_dir, texts)
    with Service(url, log_dir=run_dir, clusters="8", log_level="INFO") as svc:
        client = Client(svc.url)
        client.post_items(texts)
        client.post_events(events)
        posted = time.perf_counter()
        reasons: Counter[str] = Counter()
        waiting = list(users)
        while waiting and time.perf_counter() - posted < 600:
            answers = {u: client.cluster(u) for u in waiting}
            for a in answers.values():
                if a["status"] == "pending":
                    reasons[_shape(a["reason"])] += 1
            waiting = [u for u, a in answers.items() if a["status"] != "assigned"]
            if waiting:
                time.sleep(0.2)
        seconds = time.perf_counter() - posted
    print(f"{len(users)} users, {len(events)} events, k=8, defaults otherwise")
    print(f"all assigned {seconds:.1f} s after the last POST" if not waiting else "NOT assigned")
    for reason, n in reasons.most_common():
        print(f"  pending answers seen: {n} x {reason!r}")


def _shape(reason: str | None) -> str:
    """The reason with its numbers blanked, to count kinds."""
    return "".join("#" if c.isdigit() else c for c in reason or "none").replace("##", "#")


if __name__ == "__main__":
    main()
