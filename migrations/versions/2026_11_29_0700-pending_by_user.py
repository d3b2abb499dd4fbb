"""pending_by_user: an index of the unapplied events by user.

A profile step folds a backlog with one profile write per user: after the oldest batch it
takes the same users' other pending events (app/event/repository.py, peek_pending). This
partial index answers that lookup from the pending events alone; without it PostgreSQL
combined the user index with the whole queue's index (a minute per step at 10M events). On
PostgreSQL it is built CONCURRENTLY, so a big event table keeps taking ingest meanwhile.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_event_unapplied_user_id"
UNAPPLIED = sa.text("applied_at IS NULL")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "event",
            ["user_id"],
            postgresql_where=UNAPPLIED,
            sqlite_where=UNAPPLIED,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="event", postgresql_concurrently=True)
