"""What a newcomer meets first (issue 9, point 6): the README and the commands work as written."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from app.main import create_app
from app.server import ProblemHttpToolsProtocol

ROOT = Path(__file__).resolve().parents[1]


def run_app(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_make_run_takes_host_and_port():
    dry = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0", "PORT=9123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "python -m app migrate" in dry
    assert "python -m app serve --host 0.0.0.0 --port 9123" in dry
    default = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True)
    assert "serve --host 127.0.0.1 --port 8000" in default.stdout


def test_python_without_the_venv_explains_what_to_do():
    # -S: no site-packages, as with a system python that never saw `make install`.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "app", "migrate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "make install" in result.stderr and ".venv/bin/python -m app" in result.stderr


def test_serve_refuses_an_unmigrated_database_naming_the_command(tmp_path):
    env = {"APP_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}", "APP_WORKER": "off"}
    result = run_app("serve", "--port", "1", env=env)  # port 1: it must not get that far
    assert result.returncode == 2
    assert "python -m app migrate" in result.stderr
    worker = run_app("worker", env=env)
    assert worker.returncode == 2 and "python -m app migrate" in worker.stderr


def test_migrate_is_quiet_and_says_what_it_did(tmp_path):
    env = {"APP_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    first = run_app("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"database schema upgraded from nothing to \w+\n", first.stdout)
    assert first.stderr == ""  # no plugin or dialect chatter
    again = run_app("migrate", env=env)
    assert again.stdout.startswith("database schema is up to date") and again.stderr == ""


def test_a_cli_piped_into_a_closed_reader_exits_quietly(tmp_path):
    env = os.environ | {"APP_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    run_app("migrate", env={"APP_DATABASE_URL": env["APP_DATABASE_URL"]})
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "checkpoint", "list"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `| head -0`: the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr


# The README's quickstart, run as written against a live server --------------------------------


@pytest.fixture
def live_port(make_settings) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(make_settings()),
        host="127.0.0.1",
        port=port,
        http=ProblemHttpToolsProtocol,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def quickstart_script() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"python3 - <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    assert match, "the README's quickstart script is gone"
    return match.group(1)


def test_the_quickstart_can_be_run_twice_without_doubling_the_data(live_port, db):
    script = quickstart_script().replace("127.0.0.1:8000", f"127.0.0.1:{live_port}")
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip().splitlines()[-1])
    assert "'accepted': 300" in outputs[0]
    assert "'accepted': 0" in outputs[1] and "'duplicates': 300" in outputs[1]


def test_postgres_only_tests_have_no_sqlite_cell_to_skip():
    """`make test` used to print "SKIPPED ... needs PostgreSQL" for SQLite cells even when the
    PostgreSQL cells ran: those cells are not collected at all now."""
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "postgres_only",
            "tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    cells = [line for line in collected.splitlines() if "::" in line]
    assert cells and all(line.endswith("[postgresql]") for line in cells), cells
