"""Which cluster is a user in right now, how sure, and since when; erasure."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.assignment import repository as assignment_repository
from app.assignment import service as assignment_service
from app.clustering.vectors import unit_rows
from app.errors import NotFound
from app.event import repository as event_repository
from app.model import repository as model_repository
from app.model.cache import ModelCache
from app.profile import repository as profile_repository
from app.quarantine import repository as quarantine_repository
from app.user.schemas import (
    Alternative,
    Assignment,
    Erased,
    ProfileInfo,
    UserCluster,
    UserHistory,
)

ALTERNATIVES = 3
NO_MODEL = "no model has been trained yet"
NOT_APPLIED = "the user's events are not applied yet"
QUARANTINED = "the user's events could not be folded and are quarantined (GET /v1/quarantine)"
NO_DIRECTION = "the user's events cancel out: the profile has no direction to place"


def current_cluster(
    conn: Connection, *, user_id: str, models: ModelCache, first_fit_users: int
) -> UserCluster:
    """The user's cluster against the latest committed model version; a pending answer says
    what it waits for (`first_fit_users`: the population the first model waits for)."""
    snapshot = profile_repository.query_snapshot(
        conn, user_id, model_version=model_repository.latest_version_query()
    )
    profile = snapshot.profile
    if profile is None and not (snapshot.pending_events or snapshot.quarantined_events):
        raise NotFound(f"no events for user {user_id!r}")
    info = ProfileInfo(
        events=profile.event_count if profile else 0,
        pending_events=snapshot.pending_events,
        quarantined_events=snapshot.quarantined_events,
        last_event_at=profile.last_event_at if profile else None,
        updated_at=profile.updated_at if profile else None,
    )
    answer = UserCluster(
        user_id=user_id,
        status="pending",
        reason=None,
        cluster_id=None,
        distance=None,
        confidence=None,
        alternatives=[],
        model_version=None,
        profile=info,
    )
    model = models.get(conn, snapshot.model_version)
    if profile is None:
        answer.reason = NOT_APPLIED if snapshot.pending_events else QUARANTINED
        return answer
    if model is None:
        users = profile_repository.count(conn)
        answer.reason = (
            f"{NO_MODEL}: {first_fit_users - users} more users with a profile before the first "
            f"model (it fits at {first_fit_users})"
            if users < first_fit_users
            else NO_MODEL
        )
        return answer
    answer.model_version = model.version
    vectors, _ = unit_rows([profile.vector_sum], model.centers.shape[1])
    if not len(vectors):  # never "assigned" from a zero or non-finite vector
        answer.reason = NO_DIRECTION
        return answer
    distances = np.linalg.norm(model.centers - vectors[0].astype(np.float64), axis=1)
    order = np.argsort(distances, kind="stable")
    nearest = float(distances[order[0]])
    second = float(distances[order[1]]) if len(order) > 1 else nearest
    answer.status, answer.distance = "assigned", nearest
    answer.cluster_id = model.ids[int(order[0])]
    answer.confidence = 1.0 - nearest / second if second > 0 else 1.0
    answer.alternatives = [
        Alternative(cluster_id=model.ids[int(c)], distance=float(distances[c]))
        for c in order[1 : 1 + ALTERNATIVES]
    ]
    return answer


def history(session: Session, *, user_id: str) -> UserHistory:
    rows = assignment_repository.user_changes(session, user_id)
    if (
        not rows
        and profile_repository.get(session, user_id) is None
        and not event_repository.user_has_events(session, user_id)
    ):
        raise NotFound(f"no events for user {user_id!r}")
    return UserHistory(
        user_id=user_id,
        assignments=[
            Assignment(
                model_version=r.model_version,
                cluster_id=r.cluster_id,
                distance=r.distance,
                assigned_at=r.assigned_at,
            )
            for r in rows
        ],
    )


def erase(session: Session, *, user_id: str) -> Erased:
    """Delete every trace of the user: events first, so a worker mid-fold finishes before;
    then the profile, the current assignment and its changes (segments, export, change feed).
    Cluster rankings are aggregates without user ids; the next refresh no longer counts the
    user's events."""
    quarantine_repository.delete_user(session, user_id)
    events = event_repository.delete_user_events(session, user_id)
    profile = profile_repository.delete_user(session, user_id)
    assignment, history_rows = assignment_service.erase(session, user_id=user_id)
    if not (events or profile or assignment or history_rows):
        raise NotFound(f"no data for user {user_id!r}")
    return Erased(user_id=user_id, events=events, profile=profile, history=history_rows)
