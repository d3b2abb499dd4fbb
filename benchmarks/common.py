"""What every benchmark shares: the machine line, fresh databases, scratch folders, tables."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


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
    print("command:", command_line())
    rows: list[list[object]] = []
    for url in args.database_url:
        rows += bench_database(url, args)
    print(table(title, ["db", "measure", "value", "target", ""], rows))


def command_line() -> str:
    """How this script was started, as `python -m benchmarks.NAME ARGS`."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    name = spec.name if spec else sys.argv[0]
    return " ".join(["python -m", name, *sys.argv[1:]])


def verdict(value: float, target: float, *, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


def work_dir(name: str) -> Path:
    """A scratch directory for logs and SQLite files (kept, so logs can be read afterwards)."""
    path = Path(tempfile.gettempdir()) / "interest-clusters-bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path
