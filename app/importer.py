"""`python -m app import FILE`: bulk-load events and items from CSV or JSON Lines.

Rows go through the API's own validation (the same schemas with the same context) and the
same services, in batches of one transaction each. The batches are large (IMPORT_BATCH rows),
so a backfill is a bulk load, not an HTTP replay: on PostgreSQL each batch streams in by COPY
(app/event/repository.py), on SQLite one prepared statement runs over it.

Unlike the API, a bad row does not sink its batch: good rows are stored, bad ones are reported
by line number, and the command exits non-zero. Events are idempotent by `event_id`, so fixing
the file and importing it again stores only what is new (give events an `event_id` to make
re-imports safe).
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from tqdm import tqdm

from app.config import Settings
from app.db.base import utcnow
from app.db.session import Database
from app.errors import field_errors
from app.event import service as event_service
from app.event.schemas import EventIn
from app.item import service as item_service
from app.item.schemas import ItemIn

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
SHOWN_REJECTIONS = 100
IMPORT_BATCH = 20_000  # rows per transaction: a few MB of rows, seconds of work


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0  # new events
    duplicates: int = 0  # events whose event_id was already stored (or repeated)
    items: int = 0  # item texts upserted
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, why)

    def describe(self) -> str:
        return (
            f"{self.rows} rows: {self.accepted} events accepted, {self.duplicates} duplicates, "
            f"{self.items} items upserted, {len(self.rejected)} rejected"
        )


@dataclass
class _Batch:
    now: datetime = field(default_factory=utcnow)
    events: list[EventIn] = field(default_factory=list)
    items: list[ItemIn] = field(default_factory=list)
    context: dict[str, Any] | None = None  # events' validation context, made once per batch

    def __len__(self) -> int:
        return len(self.events) + len(self.items)


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path.name}; pass --format") from None


def import_file(
    path: Path,
    *,
    db: Database,
    settings: Settings,
    fmt: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> ImportSummary:
    """Validate and store every row of `path`; returns what happened to them."""
    fmt = detect_format(path, fmt)
    size = batch_size or IMPORT_BATCH
    summary = ImportSummary()
    batch = _Batch()
    with (
        contextlib.ExitStack() as stack,
        path.open("rb") as raw,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            disable=not progress,
            desc="import",
        ) as bar,
    ):
        # One batch is stored on a thread while the next is parsed and validated here: the
        # database's work (it waits with the GIL released) overlaps Python's. At most one
        # batch is in flight, in file order, so memory stays two batches.
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="import-store"))
        storing: Future[None] | None = None
        records = _csv_records(raw, bar) if fmt == "csv" else _jsonl_records(raw, bar)
        for line, record in records:
            summary.rows += 1
            if isinstance(record, str):
                summary.rejected.append((line, record))
                continue
            try:
                _add(batch, record, settings)
            except ValueError as exc:  # pydantic's ValidationError included
                summary.rejected.append((line, _reason(exc)))
                continue
            if len(batch) >= size:
                if storing is not None:
                    storing.result()  # the previous batch's error, if any, stops the import here
                storing = writer.submit(_store, db, batch, summary)
                batch = _Batch()
        if storing is not None:
            storing.result()
        _store(db, batch, summary)
    return summary


def _add(batch: _Batch, record: dict[str, Any], settings: Settings) -> None:
    """Validate one row as the API would (same models, same context) into the batch."""
    kind = record.pop("kind", None)
    if kind is None:
        kind = "event" if "user_id" in record or "type" in record else "item"
    if kind == "item":
        batch.items.append(ItemIn.model_validate(record))
    elif kind == "event":
        if batch.context is None:
            batch.context = event_service.validation_context(settings, now=batch.now)
        batch.events.append(EventIn.model_validate(record, context=batch.context))
    else:
        raise ValueError(f"kind: must be 'event' or 'item', not {kind!r}")


def _store(db: Database, batch: _Batch, summary: ImportSummary) -> None:
    if not len(batch):
        return
    with db.write() as session:  # items first: events in the same batch may refer to them
        if batch.items:
            summary.items += item_service.upsert(session, items=batch.items, now=batch.now).upserted
        if batch.events:
            result = event_service.ingest(session, events=batch.events, now=batch.now, bulk=True)
            summary.accepted += result.accepted
            summary.duplicates += result.duplicates


def _reason(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    errors = field_errors(exc.errors(include_url=False))
    return "; ".join(f"{e['field'] or 'row'}: {e['message']}" for e in errors)


def _lines(raw: IO[bytes], bar: tqdm) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None when the line is not valid UTF-8."""
    for number, data in enumerate(raw, start=1):
        bar.update(len(data))
        if number == 1:
            data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM from spreadsheet exports
        try:
            yield number, data.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _jsonl_records(raw: IO[bytes], bar: tqdm) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, text in _lines(raw, bar):
        if text is None:
            yield number, "not valid UTF-8"
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        if not isinstance(record, dict):
            yield number, "not a JSON object"
            continue
        yield number, record


def _csv_records(raw: IO[bytes], bar: tqdm) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Rows as dicts without empty cells; a quoted cell may span lines, so a row is reported
    at the line it starts on, and is rejected when any of its lines is not UTF-8."""
    undecodable: set[int] = set()

    def texts() -> Iterator[str]:
        for number, text in _lines(raw, bar):
            if text is None:
                undecodable.add(number)
                text = "\n"
            yield text

    reader = csv.reader(texts())
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    end = reader.line_num
    for cells in reader:
        start, end = end + 1, reader.line_num
        if any(start <= n <= end for n in undecodable):
            yield start, "not valid UTF-8"
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            yield start, f"{len(cells)} cells for {len(header)} columns"
            continue
        row: dict[str, Any] = {
            name: cell for name, cell in zip(header, cells, strict=False) if cell != ""
        }
        if "weight" in row:  # CSV has no numbers; JSON does, and the API wants one here
            with contextlib.suppress(ValueError):
                row["weight"] = float(row["weight"])
        yield start, row


def format_rejections(rejected: list[tuple[int, str]]) -> str:
    """The first rejections with reasons, then every other bad line number as ranges."""
    shown = [f"line {line}: {why}" for line, why in rejected[:SHOWN_REJECTIONS]]
    rest = [line for line, _ in rejected[SHOWN_REJECTIONS:]]
    if rest:
        shown.append(f"... and {len(rest)} more at lines {_ranges(rest)}")
    return "\n".join(shown)


def _ranges(numbers: list[int]) -> str:
    parts, start, prev = [], numbers[0], numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)
