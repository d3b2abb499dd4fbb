"""The whole data model. Singular table names, `_at` for datetimes, vectors as raw bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime

ID_LENGTH = 128
# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    """One user interaction; `applied_at` is set when it has been folded into the profile."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)  # idempotency key
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    weight: Mapped[float | None] = mapped_column(Float)  # overrides the type's weight
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The work queue: a small index over only the unapplied events.
        Index(
            "ix_event_unapplied",
            "id",
            sqlite_where=sql("applied_at IS NULL"),
            postgresql_where=sql("applied_at IS NULL"),
        ),
        # A step's other pending events of the same users (event_repository.peek_pending).
        Index(
            "ix_event_unapplied_user_id",
            "user_id",
            sqlite_where=sql("applied_at IS NULL"),
            postgresql_where=sql("applied_at IS NULL"),
        ),
    )


class Item(Base):
    """The catalogue: text that events refer to by `item_id`."""

    __tablename__ = "item"

    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Embedding(Base):
    """Embedding cache: each distinct text is encoded once per model, ever."""

    __tablename__ = "embedding"

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserProfile(Base):
    """A user's decayed interest sum S_u at `ref_time` (see app/profile/math.py)."""

    __tablename__ = "user_profile"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    vector_sum: Mapped[bytes] = mapped_column(LargeBinary)  # float64 little-endian
    ref_time: Mapped[float] = mapped_column(Float)  # epoch seconds of the newest event
    event_count: Mapped[int] = mapped_column(Integer)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Bumped on every fold; the trainer records the version it consumed. Per-row markers
    # instead of one global watermark, because concurrent profile workers on PostgreSQL
    # commit out of order and a watermark would skip the late committer.
    version: Mapped[int] = mapped_column(Integer, default=1)
    trained_version: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index(
            "ix_user_profile_untrained",
            "user_id",
            sqlite_where=sql("version > trained_version"),
            postgresql_where=sql("version > trained_version"),
        ),
    )


class ModelCheckpoint(Base):
    """One committed MiniBatchKMeans state (raw arrays + JSON meta only)."""

    __tablename__ = "model_checkpoint"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)  # bumped by `recluster`
    embedding_model: Mapped[str] = mapped_column(String(200))
    n_features: Mapped[int] = mapped_column(Integer)
    n_clusters: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    centers: Mapped[bytes] = mapped_column(LargeBinary)
    counts: Mapped[bytes] = mapped_column(LargeBinary)
    trained_rows: Mapped[int] = mapped_column(Integer)  # profile rows in this step
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClusterMetrics(Base):
    """A quality snapshot of one model version, with its cluster explanations."""

    __tablename__ = "cluster_metrics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_version: Mapped[int] = mapped_column(Integer, index=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    n_clusters: Mapped[int] = mapped_column(Integer)
    n_users: Mapped[int] = mapped_column(Integer)
    silhouette: Mapped[float | None] = mapped_column(Float)
    silhouette_sample_size: Mapped[int] = mapped_column(Integer)
    simplified_silhouette: Mapped[float | None] = mapped_column(Float)
    davies_bouldin: Mapped[float | None] = mapped_column(Float)
    calinski_harabasz: Mapped[float | None] = mapped_column(Float)
    inertia: Mapped[float] = mapped_column(Float)
    sizes: Mapped[list[int]] = mapped_column(JSON)
    changed_share: Mapped[float | None] = mapped_column(Float)  # users who moved since last
    clusters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # labels, representative items


class ClusterAssignment(Base):
    """A change of a user's cluster: recorded only when the cluster differs from the user's
    current one (the first assignment included), kept for `APP_CHANGES_RETENTION_DAYS`. It is
    both the user's history and the change feed (GET /v1/changes), whose cursor is `id`."""

    __tablename__ = "user_cluster"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    cluster_id: Mapped[int] = mapped_column(Integer)
    previous_cluster_id: Mapped[int | None] = mapped_column(Integer)
    distance: Mapped[float] = mapped_column(Float)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # retention

    # SQLite AUTOINCREMENT: without it a new row may reuse the id of a deleted newest row
    # (erasure), and a feed consumer whose cursor passed that id would never see the new one.
    __table_args__ = {"sqlite_autoincrement": True}


class UserAssignment(Base):
    """Each user's current cluster: the latest the trainer or a sweep computed, with the model
    version that computed it. Segments (members, export) read it."""

    __tablename__ = "user_assignment"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[int] = mapped_column(Integer)
    distance: Mapped[float] = mapped_column(Float)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_user_assignment_cluster_id_user_id", "cluster_id", "user_id"),)


class ClusterItem(Base):
    """A model version's ranked items per cluster (cluster_id -1: the global ranking), computed
    by the worker off the request path; recommendations read them."""

    __tablename__ = "cluster_item"

    model_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    score: Mapped[float] = mapped_column(Float)
    # the item text's embedding (float16: half the bytes a request reads), null when uncached
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)


class QuarantinedEvent(Base):
    """An event the worker could not fold, set aside with the reason so that everyone else's
    events flow on. It stays unapplied in `event`; retrying deletes this row, dropping deletes
    the event too."""

    __tablename__ = "quarantined_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)  # event.id
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)  # erasure finds it
    reason: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ModelRefit(Base):
    """One decision about a new generation: tried, adopted or not, and why."""

    __tablename__ = "model_refit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(32))  # growth, turnover, recluster ...
    adopted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    k: Mapped[int] = mapped_column(Integer)  # of the candidate
    population: Mapped[int] = mapped_column(Integer)  # users with a profile when it was tried
    model_version: Mapped[int | None] = mapped_column(Integer)  # the version it was judged against
    new_version: Mapped[int | None] = mapped_column(Integer)  # the version it became, if adopted
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # inertias, ids, splits, k report


class ClusterMap(Base):
    """The dashboard's 2-D map of one evaluated model version: its centres with their sizes
    and keywords, and a bounded sample of users (`points`, emptied on all but the newest maps;
    the row stays as the version's generation and kind for the quality-over-time chart)."""

    __tablename__ = "cluster_map"

    model_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)
    consolidation: Mapped[bool] = mapped_column(Boolean)  # the version is a Lloyd step
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    explained: Mapped[float] = mapped_column(Float)  # share of the centres' spread shown
    centers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # cluster_id, x, y, size, ...
    # [x, y, cluster_id] per user; SQL NULL (not JSON null) once emptied
    points: Mapped[list[list[float]] | None] = mapped_column(JSON(none_as_null=True))
