"""Quarantine: events the worker could not fold, with the reason.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantined_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_event")),
    )
    with op.batch_alter_table("quarantined_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantined_event_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantined_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_event_user_id"))
    op.drop_table("quarantined_event")
