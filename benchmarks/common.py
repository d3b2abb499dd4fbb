"""What every benchmark shares: databases, the service in its own process, tables, MovieLens."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
API_KEY = "bench-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def machine() -> str:
    """One line: cores, CPU model, memory, Python, date."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 2**20:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def fresh_database(url: str) -> str:
    """Empty the database at `url` and migrate it. Refuses PostgreSQL's `test` database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        for suffix in ("", "-wal", "-shm", ".trainer.lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        if parsed.database in (None, "test", "postgres"):
            raise SystemExit(f"use a database made for benchmarks, not {parsed.database!r}")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    from app.db.migrate import upgrade

    upgrade(url)
    return url


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(database_url: str, **settings: object) -> dict[str, str]:
    """The environment of a service process: APP_* settings, quiet logs, one API key."""
    env = dict(os.environ)
    env.update(
        {
            "APP_DATABASE_URL": database_url,
            "APP_API_KEYS": f"{API_KEY}:admin",
            "APP_LOG_LEVEL": "WARNING",  # no per-request access log on the hot path
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"APP_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextlib.contextmanager
def service(
    database_url: str, *, log_dir: Path, ready_path: str = "/healthz", **settings: object
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`python -m app serve` in its own process; yields (port, process) once it answers."""
    port = free_port()
    log = open(log_dir / f"serve-{port}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [PYTHON, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=app_env(database_url, **settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(port, ready_path, proc, timeout=180)
        yield port, proc
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def worker_process(
    database_url: str, *, log_dir: Path, **settings: object
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m app worker` in its own process."""
    log = open(log_dir / "worker.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [PYTHON, "-m", "app", "worker"],
        cwd=ROOT,
        env=app_env(database_url, **settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service did not answer {path} within {timeout:.0f} s")


def rss_peak_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    return _proc_status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), in MiB."""
    return _proc_status_mb(pid, "VmRSS:")


def _proc_status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table, so the output pastes straight into RESULTS.md."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = [f"\n### {title}\n", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report_per_database(
    title: str, args: argparse.Namespace, bench_database: Callable[..., list[list[object]]]
) -> None:
    """Print the machine and command, run `bench_database(url, args)` per URL, print one table."""
    print(machine())
    print("command:", " ".join(sys.argv))
    rows: list[list[object]] = []
    for url in args.database_url:
        rows += bench_database(url, args)
    print(table(title, ["db", "measure", "value", "target", ""], rows))


def verdict(value: float, target: float, *, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


def work_dir(name: str) -> Path:
    """A scratch directory for logs and SQLite files (kept, so logs can be read afterwards)."""
    path = Path(tempfile.gettempdir()) / "interest-clusters-bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def movielens_texts(data_dir: Path) -> dict[str, str]:
    """movieId -> "title — genres" (as in the README's example)."""
    with open(data_dir / "movies.csv", newline="", encoding="utf-8") as f:
        return {row["movieId"]: f"{row['title']} — {row['genres']}" for row in csv.DictReader(f)}


def movielens_ratings(data_dir: Path) -> list[tuple[str, str, float, int]]:
    """(userId, movieId, rating, timestamp) in time order."""
    with open(data_dir / "ratings.csv", newline="", encoding="utf-8") as f:
        rows = [
            (r["userId"], r["movieId"], float(r["rating"]), int(r["timestamp"]))
            for r in csv.DictReader(f)
        ]
    rows.sort(key=lambda r: r[3])
    return rows


def rating_type(rating: float) -> str:
    return "like" if rating >= 4.0 else "dislike" if rating <= 2.0 else "view"
