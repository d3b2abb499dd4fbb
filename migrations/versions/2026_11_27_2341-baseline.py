"""Baseline: the whole data model the pipeline needs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:41:24.991705
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_clusters", sa.Integer(), nullable=False),
        sa.Column("n_users", sa.Integer(), nullable=False),
        sa.Column("silhouette", sa.Float(), nullable=True),
        sa.Column("silhouette_sample_size", sa.Integer(), nullable=False),
        sa.Column("simplified_silhouette", sa.Float(), nullable=True),
        sa.Column("davies_bouldin", sa.Float(), nullable=True),
        sa.Column("calinski_harabasz", sa.Float(), nullable=True),
        sa.Column("inertia", sa.Float(), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=False),
        sa.Column("changed_share", sa.Float(), nullable=True),
        sa.Column("clusters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_metrics")),
    )
    with op.batch_alter_table("cluster_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_metrics_model_version"), ["model_version"], unique=False
        )

    op.create_table(
        "embedding",
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "text_hash", name=op.f("pk_embedding")),
    )
    op.create_table(
        "event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=128), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_event_id")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_item_id"), ["item_id"], unique=False)
        batch_op.create_index(
            "ix_event_unapplied",
            ["id"],
            unique=False,
            sqlite_where=sa.text("applied_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_event_user_id"), ["user_id"], unique=False)

    op.create_table(
        "item",
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_item")),
    )
    op.create_table(
        "model_checkpoint",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("n_clusters", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("centers", sa.LargeBinary(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.Column("trained_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_model_checkpoint")),
    )
    op.create_table(
        "user_cluster",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_cluster")),
    )
    with op.batch_alter_table("user_cluster", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_cluster_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_profile",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("vector_sum", sa.LargeBinary(), nullable=False),
        sa.Column("ref_time", sa.Float(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trained_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_profile")),
    )
    with op.batch_alter_table("user_profile", schema=None) as batch_op:
        batch_op.create_index(
            "ix_user_profile_untrained",
            ["user_id"],
            unique=False,
            sqlite_where=sa.text("version > trained_version"),
            postgresql_where=sa.text("version > trained_version"),
        )


def downgrade() -> None:
    with op.batch_alter_table("user_profile", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_user_profile_untrained",
            sqlite_where=sa.text("version > trained_version"),
            postgresql_where=sa.text("version > trained_version"),
        )

    op.drop_table("user_profile")
    with op.batch_alter_table("user_cluster", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_cluster_user_id"))

    op.drop_table("user_cluster")
    op.drop_table("model_checkpoint")
    op.drop_table("item")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_user_id"))
        batch_op.drop_index(
            "ix_event_unapplied",
            sqlite_where=sa.text("applied_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_event_item_id"))

    op.drop_table("event")
    op.drop_table("embedding")
    with op.batch_alter_table("cluster_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_metrics_model_version"))

    op.drop_table("cluster_metrics")
