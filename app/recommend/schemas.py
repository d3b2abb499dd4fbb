"""Answers about recommendations, cluster rankings and a user's interests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Reason(BaseModel):
    kind: Literal["cluster", "interest", "global"]
    cluster_id: int | None  # the cluster whose members engaged with the item (null: global)
    keywords: list[str]  # that cluster's label
    interest: int | None  # index into GET /v1/users/{id}/interests, when kind is "interest"
    text: str


class Recommendation(BaseModel):
    item_id: str
    score: float
    reason: Reason


class Recommendations(BaseModel):
    user_id: str
    personal: bool  # false: the global ranking (see `reason`)
    reason: str | None  # why the ranking is global; null when personal
    model_version: int | None  # the model version the rankings were computed for
    items: list[Recommendation]


class RankedItem(BaseModel):
    item_id: str
    score: float


class ClusterItems(BaseModel):
    cluster_id: int
    keywords: list[str]
    model_version: int
    items: list[RankedItem]


class RepresentativeItem(BaseModel):
    item_id: str | None  # null: an event with its own text and no item
    text: str


class InterestInfo(BaseModel):
    importance: float  # time-decayed weight of the interest's events
    share: float  # importance / the sum over the interests shown
    cluster_id: int | None  # the nearest cluster (null before the first model)
    distance: float | None
    keywords: list[str]
    representative_items: list[RepresentativeItem]
    events: int  # distinct texts in the interest


class Interests(BaseModel):
    user_id: str
    model_version: int | None
    interests: list[InterestInfo]
