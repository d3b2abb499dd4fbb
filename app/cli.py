"""Entry points: `python -m app serve | worker | migrate | import | checkpoint | quarantine |
recluster | export`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from app.config import Settings, SettingsError, load_settings
from app.db.session import UnsupportedDatabaseError
from app.observability import configure_logging

log = logging.getLogger(__name__)


def _schema_problem(settings: Settings) -> str | None:
    """Why this database cannot be served yet (schema missing or behind), or None. A database
    that cannot be reached is not refused: it may come up later, and /readyz says so meanwhile."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.errors import describe
    from app.db.migrate import schema_status
    from app.db.session import create_db_engine

    engine = create_db_engine(settings.database_url)  # with its connect timeout
    try:
        with engine.connect() as conn:
            status = schema_status(conn)
    except SQLAlchemyError as exc:
        log.warning("cannot check the database schema yet: %s", describe(exc))
        return None
    finally:
        engine.dispose()
    return None if status.current else f"the database schema is {status.detail}"


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.main import create_app
    from app.server import serve

    if problem := _schema_problem(settings):
        print(f"not serving: {problem}", file=sys.stderr)
        return 2
    serve(create_app(settings), host=args.host, port=args.port)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from app.db.session import Database
    from app.worker.loop import Worker

    if problem := _schema_problem(settings):
        print(f"not starting the worker: {problem}", file=sys.stderr)
        return 2
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        # A worker's cache, encode and train metrics live in its own process: serve them here.
        start_http_server(args.metrics_port, addr=args.metrics_host)
        log.info("worker metrics on http://%s:%d/metrics", args.metrics_host, args.metrics_port)
    worker = Worker(settings, Database(settings.database_url))
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()
    return 1 if worker.load_error else 0  # a model that cannot load is a failed start


def _migrate(_: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrate import upgrade

    before, after = upgrade(settings.database_url)
    if before == after:
        print(f"database schema is up to date (revision {after})")
    else:
        print(f"database schema upgraded from {before or 'nothing'} to {after}")
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import Database
    from app.importer import format_rejections, import_file

    db = Database(settings.database_url)
    try:
        summary = import_file(
            args.file,
            db=db,
            settings=settings,
            fmt=args.format,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    except (OSError, ValueError) as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(f"{args.file}: {summary.describe()}")
    if summary.rejected:
        print(format_rejections(summary.rejected), file=sys.stderr)
        return 1
    return 0


def _checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import Database
    from app.model import commands as model_commands

    db = Database(settings.database_url)
    try:
        if args.action == "list":
            print(model_commands.format_list(model_commands.list_rows(db)))
            return 0
        summary = model_commands.show(db, args.version)
    finally:
        db.dispose()
    if summary is None:
        print(f"no checkpoint with version {args.version}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _recluster(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import Database
    from app.model import commands as model_commands

    if not 2 <= args.k <= 1024:
        print("recluster failed: --k must be between 2 and 1024", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        version = model_commands.recluster(db, settings, clusters=args.k)
    except ValueError as exc:
        print(f"recluster failed: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"model version {version}: a new generation with {args.k} clusters is live")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from app.assignment import service as assignment_service
    from app.db.session import Database

    db = Database(settings.database_url)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    started = time.perf_counter()
    try:
        with assignment_service.snapshot(db) as session:
            cursor = assignment_service.changes_cursor(session)
            lines = 0
            for chunk in assignment_service.export_lines(session):
                out.write(chunk)
                lines += chunk.count("\n")
    finally:
        if out is not sys.stdout:
            out.close()
        db.dispose()
    # On stderr: stdout is the data. Poll GET /v1/changes?after=<cursor> to stay in sync.
    seconds = time.perf_counter() - started
    print(
        f"{lines} assignments exported (changes cursor {cursor}) in {seconds:.2f} s",
        file=sys.stderr,
    )
    return 0


def _quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.session import Database
    from app.errors import NotFound
    from app.quarantine import service as quarantine_service

    db = Database(settings.database_url)
    try:
        if args.action == "list":
            with db.read() as session:
                page = quarantine_service.list_page(session, after=args.after, limit=args.limit)
            for e in page.events:
                print(json.dumps(e.model_dump(mode="json"), ensure_ascii=False))
            if page.next_after is not None:
                print(f"more: --after {page.next_after}", file=sys.stderr)
            return 0
        with db.write() as session:
            if args.action == "retry":
                ids = None if args.all else args.ids
                done = f"{quarantine_service.retry(session, ids=ids).released} event(s) released"
            else:
                done = f"{quarantine_service.drop(session, ids=args.ids).dropped} event(s) dropped"
    except NotFound as exc:
        print(f"quarantine {args.action} failed: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(done)
    return 0


IMPORT_HELP = """\
Load events and/or items from CSV (a header row names the columns) or JSON Lines (one object
per line). Columns/keys are those of the API: events have user_id, type, item_id, text,
timestamp, weight, event_id; items have item_id and text. An optional `kind` column says
`event` or `item`; without it, a row with user_id or type is an event, else an item.
Every row is validated exactly as POST /v1/events and POST /v1/items validate it. Valid rows
are stored (in batches, one transaction each) even when other rows are bad; bad rows are
listed by line number and the command exits with status 1. Events are idempotent by
event_id: fix the bad lines and import the file again to store only what is missing
(events without an event_id get a fresh one, so they are stored again on every import).
"""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (and the inline worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run a worker: fold profiles; train when leader")
    worker.add_argument("--metrics-port", type=int, help="serve this process's /metrics here")
    worker.add_argument("--metrics-host", default="0.0.0.0")
    worker.set_defaults(run=_worker)

    commands.add_parser("migrate", help="upgrade the database schema (idempotent)").set_defaults(
        run=_migrate
    )

    load = commands.add_parser(
        "import",
        help="bulk-load events/items from CSV or JSON Lines",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("file", type=Path)
    load.add_argument("--format", choices=["csv", "jsonl"], help="default: from the extension")
    load.add_argument("--batch-size", type=_positive, help="rows per transaction (default: 20,000)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(run=_import)

    checkpoint = commands.add_parser("checkpoint", help="inspect stored model checkpoints")
    actions = checkpoint.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every stored version").set_defaults(run=_checkpoint)
    show = actions.add_parser("show", help="one version's summary (no arrays)")
    show.add_argument("version", type=int)
    show.set_defaults(run=_checkpoint)

    quarantine = commands.add_parser(
        "quarantine", help="events the worker could not fold: list, retry or drop them"
    )
    verbs = quarantine.add_subparsers(dest="action", required=True)
    listing = verbs.add_parser("list", help="one JSON object per line, oldest first")
    listing.add_argument("--after", type=int, help="continue after this id")
    listing.add_argument("--limit", type=_positive, default=1000)
    listing.set_defaults(run=_quarantine)
    retry = verbs.add_parser("retry", help="put events back in the work queue")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", type=int, nargs="*", default=[], help="ids from `list`")
    which.add_argument("--all", action="store_true", help="every quarantined event")
    retry.set_defaults(run=_quarantine)
    drop = verbs.add_parser("drop", help="delete events for good")
    drop.add_argument("ids", type=int, nargs="+", help="ids from `list`")
    drop.set_defaults(run=_quarantine)

    recluster = commands.add_parser(
        "recluster",
        help="train a new model generation with K clusters on all profiles and make it live",
    )
    recluster.add_argument("--k", type=int, required=True, help="number of clusters (>= 2)")
    recluster.set_defaults(run=_recluster)

    export = commands.add_parser(
        "export", help="every current assignment as JSON Lines (stdout, or --output FILE)"
    )
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.set_defaults(run=_export)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        status = args.run(args, settings)
        sys.stdout.flush()
    except UnsupportedDatabaseError as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours. Point stdout at devnull so
        # the interpreter's final flush does not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 141  # what a shell reports for a command killed by SIGPIPE
    raise SystemExit(status)
