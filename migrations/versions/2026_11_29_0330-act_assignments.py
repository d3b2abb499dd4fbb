"""user_assignment, cluster_item; user_cluster keeps only changes (the change feed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # SQLite: recreated with AUTOINCREMENT, so that ids of deleted rows are never reused (the
    # change feed's cursor is the id). PostgreSQL's sequence never reuses one: altered in place.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "user_cluster",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("previous_cluster_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_user_cluster_assigned_at"), ["assigned_at"], unique=False)
    op.create_table(
        "user_assignment",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_assignment")),
    )
    op.create_index(
        "ix_user_assignment_cluster_id_user_id", "user_assignment", ["cluster_id", "user_id"]
    )
    # The current assignment of each user is the latest history row recorded so far.
    op.execute(
        "INSERT INTO user_assignment (user_id, cluster_id, model_version, distance, assigned_at) "
        "SELECT h.user_id, h.cluster_id, h.model_version, h.distance, h.assigned_at "
        "FROM user_cluster h JOIN (SELECT user_id, max(id) AS id FROM user_cluster "
        "GROUP BY user_id) latest ON latest.id = h.id"
    )
    op.create_table(
        "cluster_item",
        sa.Column("model_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cluster_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rank", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint(
            "model_version", "cluster_id", "rank", name=op.f("pk_cluster_item")
        ),
    )


def downgrade() -> None:
    op.drop_table("cluster_item")
    op.drop_index("ix_user_assignment_cluster_id_user_id", table_name="user_assignment")
    op.drop_table("user_assignment")
    with op.batch_alter_table("user_cluster") as batch:
        batch.drop_index(batch.f("ix_user_cluster_assigned_at"))
        batch.drop_column("previous_cluster_id")
