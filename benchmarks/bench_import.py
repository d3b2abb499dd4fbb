"""Bulk backfill: `python -m app import FILE` against a raw bulk load of the same rows.

    python -m benchmarks.bench_import --events 1000000 \
        --database-url sqlite:////tmp/interest-clusters-bench/import/bench.db \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_import

A JSON Lines file of N historical events (event_id, user, type, item, ISO timestamp) is
written once. The import runs in this process, as the CLI does (`import_file`), on an emptied
database: parsing, validating every row with the API's schemas, storing in 20,000-row
transactions. The raw limit is the same rows, already parsed, loaded with no validation:
PostgreSQL one binary `COPY` straight into the event table, SQLite one Core executemany; both
into the real table with its indexes, in one transaction.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from app.config import load_settings
from app.db.models import Event
from app.db.session import Database
from app.importer import import_file
from benchmarks import common
from benchmarks.bench_ingest import as_rows, make_events

COLUMNS = ["event_id", "user_id", "type", "item_id", "text", "weight", "occurred_at", "received_at"]
TYPES = ["text", "text", "text", "text", "text", "float8", "timestamptz", "timestamptz"]


def write_file(path: Path, n: int) -> list[dict]:
    events = make_events("h", n, users=100_000, items=10_000, seed=7)
    if not path.exists():
        with path.open("w") as out:
            for e in events:
                out.write(json.dumps(e) + "\n")
    return events


def raw_load(url: str, events: list[dict]) -> float:
    """Events/s of the rows loaded with no validation, in one transaction."""
    rows = as_rows(events, datetime.now(UTC))
    db = Database(url)
    started = time.perf_counter()
    with db.write() as session:
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                copy_sql = f"COPY event ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(TYPES)
                    for row in rows:
                        copy.write_row([row[c] for c in COLUMNS])
        else:
            conn.execute(insert(Event.__table__), rows)
    seconds = time.perf_counter() - started
    db.dispose()
    return len(rows) / seconds


def bench_database(url: str, args: argparse.Namespace) -> list[list[object]]:
    kind = common.backend(url)
    path = common.work_dir("import") / f"events-{args.events}.jsonl"
    events = write_file(path, args.events)

    common.fresh_database(url)
    raw = raw_load(url, events)

    common.fresh_database(url)
    settings = load_settings(database_url=url, worker="off", api_keys={})
    db = Database(url)
    started = time.perf_counter()
    summary = import_file(path, db=db, settings=settings, progress=False)
    seconds = time.perf_counter() - started
    db.dispose()
    assert summary.accepted == args.events and not summary.rejected, summary.describe()
    rate = args.events / seconds
    ratio = 100 * rate / raw
    what = "COPY" if kind == "postgresql" else "Core executemany"
    return [
        [kind, f"python -m app import, {args.events:,} events (events/s)", rate, "", ""],
        [kind, f"raw {what} of the same rows, no validation (events/s)", raw, "", ""],
        [kind, "import / raw (%)", ratio, ">= 50", common.verdict(ratio, 50)],
        [kind, "import wall time (s)", seconds, "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", required=True)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    common.report_per_database("Import", args, bench_database)


if __name__ == "__main__":
    main()
