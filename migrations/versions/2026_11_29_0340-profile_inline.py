"""ingest_profile_inline: PostgreSQL keeps a profile's 3 KB sum in the row, not in TOAST.

A row over ~2 KB is TOASTed by default: PostgreSQL tries to compress the float64 sum (which
barely compresses) and then moves it to the TOAST table, so every fold rewrote two heaps and
an index. With the tuple target at its maximum the row stays in the heap while it fits in a
page (384-d: ~3.2 KB); STORAGE MAIN keeps even a larger model's sum inline, compressed, for as
long as it fits. SQLite has nothing to change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 03:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE user_profile SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE user_profile ALTER COLUMN vector_sum SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE user_profile ALTER COLUMN vector_sum SET STORAGE EXTENDED")
    op.execute("ALTER TABLE user_profile RESET (toast_tuple_target)")
