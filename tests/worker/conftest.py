"""Pipeline fixtures: worker processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def spawn_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `python -m app worker` processes against the test database."""
    processes: list[subprocess.Popen] = []

    def spawn(name: str = "worker", **settings: object) -> subprocess.Popen:
        # PyTorch, as make_settings: tests compare the workers' vectors with the session
        # `embedder`'s (the other backends: tests/embedding/test_backends.py).
        env = os.environ | {"APP_DATABASE_URL": database_url, "APP_LOG_LEVEL": "INFO",
                            "APP_EMBEDDING_BACKEND": "torch"}  # fmt: skip
        env |= {f"APP_{k.upper()}": str(v) for k, v in settings.items()}
        log = open(tmp_path / f"{name}-{len(processes)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        processes.append(proc)
        return proc

    yield spawn
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
