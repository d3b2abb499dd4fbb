"""cluster_map: the dashboard's 2-D map of each evaluated model version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:56:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_map",
        sa.Column("model_version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("consolidation", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("explained", sa.Float(), nullable=False),
        sa.Column("centers", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("model_version", name=op.f("pk_cluster_map")),
    )


def downgrade() -> None:
    op.drop_table("cluster_map")
