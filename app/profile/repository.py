"""All SQL about user profiles: folding into them, the trainer's reads, and the query's read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, ScalarSelect, delete, func, select, update
from sqlalchemy.orm import Session

from app.db.models import UserProfile
from app.db.session import dialect_insert, in_chunks, rowcount
from app.event import repository as event_repository


def lock_profiles(
    session: Session, user_ids: list[str], *, model_id: str, placeholder: dict[str, Any]
) -> dict[str, UserProfile]:
    """Create missing profiles, then lock all of them, in user_id order (no deadlocks)."""
    ordered = sorted(set(user_ids))
    session.execute(
        dialect_insert(session, UserProfile).on_conflict_do_nothing(index_elements=["user_id"]),
        [{"user_id": u, "model_id": model_id, **placeholder} for u in ordered],
    )
    profiles = session.scalars(
        select(UserProfile)
        .where(UserProfile.user_id.in_(ordered))
        .order_by(UserProfile.user_id)
        .with_for_update()
    ).all()
    return {p.user_id: p for p in profiles}


def untrained_profiles(session: Session, limit: int) -> list[tuple[str, bytes, int]]:
    """(user_id, vector_sum, version) of profiles changed since the trainer last saw them."""
    query = (
        select(UserProfile.user_id, UserProfile.vector_sum, UserProfile.version)
        .where(UserProfile.version > UserProfile.trained_version)
        .order_by(UserProfile.user_id)
        .limit(limit)
        # A profile a worker is folding right now is skipped; it is picked up next step.
        .with_for_update(skip_locked=True)
    )
    return list(session.execute(query).tuples())


def count_untrained(session: Session) -> int:
    query = select(func.count()).where(UserProfile.version > UserProfile.trained_version)
    return session.scalar(query) or 0


def mark_trained(session: Session, user_ids: list[str]) -> None:
    """Record that the trainer consumed these profiles as they are now. Correct because the
    step read them under its row locks (`untrained_profiles`), so no fold has changed them."""
    for chunk in in_chunks(user_ids):
        session.execute(
            update(UserProfile)
            .where(UserProfile.user_id.in_(chunk))
            .values(trained_version=UserProfile.version)
            .execution_options(synchronize_session=False)
        )


def sample(session: Session, limit: int) -> list[tuple[str, bytes]]:
    """(user_id, vector_sum) of up to `limit` profiles (all of them when there are fewer)."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    total = session.scalar(select(func.count()).select_from(UserProfile)) or 0
    if total > limit:
        query = query.order_by(func.random()).limit(limit)
    return list(session.execute(query).tuples())


def page(session: Session, *, after: str | None, limit: int) -> list[tuple[str, bytes]]:
    """The next `limit` profiles in user_id order after `after`: keyset pages, bounded memory."""
    query = select(UserProfile.user_id, UserProfile.vector_sum).where(UserProfile.event_count > 0)
    if after is not None:
        query = query.where(UserProfile.user_id > after)
    return list(session.execute(query.order_by(UserProfile.user_id).limit(limit)).tuples())


@dataclass(frozen=True)
class QuerySnapshot:
    profile: Row[Any] | None  # event_count, vector_sum, last_event_at, updated_at
    pending_events: int
    quarantined_events: int
    model_version: int | None


def query_snapshot(
    session: Session, user_id: str, *, model_version: ScalarSelect[Any]
) -> QuerySnapshot:
    """What a cluster query needs, in one round trip: the profile, the user's unapplied events
    (pending and quarantined) and `model_version`, the model domain's subquery for the latest
    committed version (passed in because profiles sit below the model on the data path)."""
    pending = event_repository.user_pending_count(user_id)
    quarantined = event_repository.user_quarantined_count(user_id)
    row = session.execute(
        select(
            pending.label("pending"),
            quarantined.label("quarantined"),
            model_version.label("latest"),
            UserProfile.event_count,
            UserProfile.vector_sum,
            UserProfile.last_event_at,
            UserProfile.updated_at,
        ).where(UserProfile.user_id == user_id)
    ).first()
    if row is None:  # no profile (yet): the rarer path costs a second statement
        counts = session.execute(select(pending, quarantined, model_version)).one()
        return QuerySnapshot(None, counts[0], counts[1], counts[2])
    return QuerySnapshot(row, row.pending, row.quarantined, row.latest)


def get(session: Session, user_id: str) -> UserProfile | None:
    return session.get(UserProfile, user_id)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(UserProfile)) or 0


def delete_user(session: Session, user_id: str) -> int:
    return rowcount(session.execute(delete(UserProfile).where(UserProfile.user_id == user_id)))


def lock_existing(session: Session, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` that still have a profile, share-locked until the transaction ends:
    a concurrent erasure waits, so nothing is written for a user erased meanwhile."""
    found: set[str] = set()
    for chunk in in_chunks(sorted(user_ids)):
        query = select(UserProfile.user_id).where(UserProfile.user_id.in_(chunk))
        found.update(session.scalars(query.with_for_update(read=True)))
    return found
