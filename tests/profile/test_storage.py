"""How PostgreSQL stores a profile: the 3 KB float64 sum stays in the row (not TOASTed), so a
fold rewrites one heap tuple instead of a heap tuple plus TOAST chunks and their index."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import drain, post, topic_events


@pytest.mark.postgres_only
def test_profile_sums_are_stored_inline_not_toasted(db, embedder, make_settings):
    post(db, topic_events(users_per_topic=20, events_per_user=3))
    assert drain(db, embedder, make_settings(batch_size=50)) == 180
    with db.read() as session:
        sizes = session.execute(
            text("SELECT DISTINCT pg_column_size(vector_sum) FROM user_profile")
        ).scalars()
        toast = session.execute(
            text(
                "SELECT pg_relation_size(reltoastrelid) FROM pg_class"
                " WHERE relname = 'user_profile'"
            )
        ).scalar_one()
    # 384 float64 stored as is (4-byte varlena header): not compressed, not moved out of line.
    assert list(sizes) == [8 * embedder.dim + 4]
    assert toast == 0
