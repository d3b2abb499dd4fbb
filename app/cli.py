"""Entry points: `python -m app serve | worker | migrate | ...`."""

from __future__ import annotations

import argparse
import logging
import sys

from app.config import SettingsError, get_settings


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(get_settings()), host=args.host, port=args.port, log_config=None)


def _worker(_: argparse.Namespace) -> None:
    import signal

    from app.db.session import Database
    from app.worker.loop import Worker

    settings = get_settings()
    worker = Worker(settings, Database(settings.database_url))
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()


def _migrate(_: argparse.Namespace) -> None:
    from app.db.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database schema is up to date")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (and the inline worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)
    commands.add_parser(
        "worker", help="run a worker: fold profiles; train when leader"
    ).set_defaults(run=_worker)
    commands.add_parser("migrate", help="upgrade the database schema (idempotent)").set_defaults(
        run=_migrate
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args.run(args)
