"""Each user's current cluster and the changes of it: recorded by the trainer (one leader),
brought to the current model by a sweep, read as segments, an export and a change feed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.assignment import repository
from app.assignment.schemas import Change, Changes, Member, Members
from app.clustering.model import OnlineKMeans
from app.clustering.vectors import unit_rows
from app.db.base import utcnow
from app.db.session import Database, is_sqlite
from app.errors import ProblemError
from app.profile import repository as profile_repository

SWEEP_PAGE = 10_000  # profiles per sweep transaction (bounded memory, short writes)
EXPORT_BATCH = 10_000  # rows fetched at a time by the export


class CursorExpired(ProblemError):
    status = 410
    title = "Cursor expired"


def record(session: Session, rows: list[dict[str, Any]], *, retention_days: float) -> int:
    """Make `rows` (user_id, model_version, cluster_id, distance, assigned_at) the users'
    current assignments, and record a change for each whose cluster differs from the user's
    current one (a first assignment included); drop changes older than the retention.
    Returns the changes recorded. Called by the trainer (one leader) in its step's commit."""
    fresh, changed = _fresh_changes(session, rows)
    repository.add_changes(session, changed)
    repository.upsert(session, fresh)
    repository.prune_changes(session, before=utcnow() - timedelta(days=retention_days))
    return len(changed)


def lock_changes(session: Session) -> None:
    """Take the change feed's lock now, for the rest of the transaction. A writer that also
    locks profile rows takes it before them, as the sweep does: one order, so the trainer's
    commit and the sweep never deadlock."""
    repository.lock_changes(session)


def _fresh_changes(
    session: Session, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(fresh, changed): the rows not older than the user's current assignment, and those of
    them that move the user. Read under the change feed's lock (repository.lock_changes): the
    trainer and the sweep (on the evaluation's thread) write assignments concurrently, and
    this way neither records a move the other already recorded, nor an older model version's
    answer over a newer one. Change ids then also commit in id order, as a cursor needs."""
    lock_changes(session)
    current = repository.current_assignments(session, [r["user_id"] for r in rows])
    fresh = [
        r
        for r in rows
        if r["user_id"] not in current or current[r["user_id"]][1] <= r["model_version"]
    ]
    changed = []
    for r in fresh:
        previous = current.get(r["user_id"], (None, 0))[0]
        if previous != r["cluster_id"]:
            changed.append({**r, "previous_cluster_id": previous})
    return fresh, changed


def sweep(db: Database, model: OnlineKMeans, *, ids: list[int], version: int) -> int:
    """Bring every user's assignment to `model` (the trainer's, at `version`): a refit or a
    consolidation moves centres without training on the users it moves. Pages of profiles in
    user_id order; only the users whose cluster changed are written. Returns how many."""
    changed, after = 0, None
    while True:
        with db.read() as session:
            page = profile_repository.page(session, after=after, limit=SWEEP_PAGE)
        if not page:
            return changed
        after = page[-1][0]
        X, kept = unit_rows([blob for _, blob in page], model.n_features)
        if not len(X):
            continue
        distances = model.distances(X)
        labels = distances.argmin(axis=1)
        now = utcnow()
        rows = [
            {
                "user_id": page[i][0],
                "model_version": version,
                "cluster_id": ids[int(c)],
                "distance": float(distances[j, c]),
                "assigned_at": now,
            }
            for j, (i, c) in enumerate(zip(kept, labels, strict=True))
        ]
        with db.write() as session:
            moved = _fresh_changes(session, rows)[1]
            # Only the users written to are locked (share-locking a tuple writes to its page):
            # in a steady state few users move.
            alive = profile_repository.lock_existing(session, [r["user_id"] for r in moved])
            moved = [r for r in moved if r["user_id"] in alive]
            repository.add_changes(session, moved)
            repository.upsert(session, [{k: r[k] for k in rows[0]} for r in moved])
        changed += len(moved)


def members(
    session: Session, *, cluster_id: int, after: str | None, limit: int, latest: int | None
) -> Members:
    rows = repository.members(session, cluster_id=cluster_id, after=after, limit=limit)
    return Members(
        cluster_id=cluster_id,
        latest_model_version=latest,
        members=[Member(**row._asdict()) for row in rows],
        next_after=rows[-1].user_id if len(rows) == limit else None,
    )


def changes(session: Session, *, after: int, limit: int, latest: int | None) -> Changes:
    """The changes after the cursor `after`, oldest first. A cursor older than the oldest
    change kept may have missed changes the retention dropped: 410, resync from the export."""
    oldest = repository.change_id_range(session)[0]
    # Retention keeps the newest change, so a gap below the oldest kept means rows were pruned
    # (or the user with the oldest change was erased: a lagging consumer then resyncs too).
    if after > 0 and oldest is not None and after < oldest - 1:
        raise CursorExpired(
            f"cursor {after} is older than the oldest change kept ({oldest}): reload every "
            "assignment from GET /v1/assignments and poll from its Changes-Cursor header"
        )
    rows = repository.changes(session, after=after, limit=limit)
    return Changes(
        changes=[
            Change(
                cursor=r.id,
                user_id=r.user_id,
                cluster_id=r.cluster_id,
                previous_cluster_id=r.previous_cluster_id,
                model_version=r.model_version,
                distance=r.distance,
                changed_at=r.assigned_at,
            )
            for r in rows
        ],
        next_after=rows[-1].id if rows else after,
        latest_model_version=latest,
    )


def changes_cursor(session: Session) -> int:
    """The cursor that follows every change committed so far (0 when there is none)."""
    return repository.change_id_range(session)[1] or 0


def export_lines(session: Session) -> Iterator[str]:
    """Every current assignment as JSON Lines, in user_id order, a batch of lines at a time."""
    lines: list[str] = []
    for user_id, cluster_id, version, distance, assigned_at in repository.stream_all(
        session, batch=EXPORT_BATCH
    ):
        # json.dumps only where escaping matters: the id; numbers and the time are safe as is.
        lines.append(
            f'{{"user_id":{json.dumps(user_id)},"cluster_id":{cluster_id},'
            f'"model_version":{version},"distance":{distance!r},'
            f'"assigned_at":"{assigned_at.isoformat()}"}}\n'
        )
        if len(lines) == 1000:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def erase(session: Session, *, user_id: str) -> tuple[int, int]:
    """Delete the user's assignment and every change of it: (assignments, changes) deleted."""
    return repository.delete_user(session, user_id)


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """One consistent view for a long read (the export): the cursor it reports and the rows it
    streams belong to the same moment. SQLite's read transaction is such a snapshot already."""
    engine = db.engine
    if not is_sqlite(engine):
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine) as session, session.begin():
        yield session
