"""Answers about assignments: a cluster's members, and the change feed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Member(BaseModel):
    user_id: str
    model_version: int  # the model version that computed this assignment
    distance: float
    assigned_at: datetime


class Members(BaseModel):
    cluster_id: int
    latest_model_version: int | None
    members: list[Member]
    next_after: str | None  # pass as `after` for the next page; null on the last page


class Change(BaseModel):
    cursor: int  # pass the last one seen as `after`
    user_id: str
    cluster_id: int
    previous_cluster_id: int | None  # null: the user's first assignment
    model_version: int
    distance: float
    changed_at: datetime


class Changes(BaseModel):
    changes: list[Change]
    next_after: int  # the cursor to poll with next (unchanged when there is nothing new)
    latest_model_version: int | None
