"""Drivers for the compose test: a Docker engine with stand-in base images, a local index
for the CPU torch wheel, and a compose project run from a copy of this checkout."""

from __future__ import annotations

import functools
import http.server
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = ROOT / ".ci" / "docker-engine"
T = TypeVar("T")
# The index URL is a build argument, so it is part of the build cache's key: a fixed port lets
# the next run reuse the torch and dependency layers.
INDEX_PORT = 18765
# What compose reads from the shell before .env: a developer's own values must not leak in.
COMPOSE_VARIABLES = (
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "API_PORT",
    "IMAGE",
    "PYTHON_IMAGE",
    "POSTGRES_IMAGE",
    "TORCH_INDEX_URL",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
)


def run(
    *command: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    diagnose: Callable[[], str] = lambda: "",
) -> T:
    """The first truthy value `probe` returns; fails naming `what` (and the logs) at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}\n{diagnose()}"
            )
        time.sleep(interval)


def start_engine() -> dict[str, str]:
    """`.ci/docker-engine up`: the engine running and the stand-in images built; returns the
    variables it prints (PYTHON_IMAGE, POSTGRES_IMAGE, DOCKER_BRIDGE_GATEWAY)."""
    result = subprocess.run(
        [str(ENGINE_SCRIPT), "up"], capture_output=True, text=True, timeout=1800
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise AssertionError(f".ci/docker-engine up failed ({result.returncode})")
    return dict(line.split("=", 1) for line in result.stdout.split())


def stop_engine() -> None:
    subprocess.run([str(ENGINE_SCRIPT), "down"], check=False, timeout=120)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def torch_index(directory: Path, host: str) -> Iterator[str]:
    """A PEP 503 index holding only the torch wheel pip on this machine picks (the CPU build
    from its local wheel folder), served where image builds reach it: the bridge gateway."""
    project = directory / "torch"
    run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "torch==2.13.0",
        "-d",
        str(project),
    )
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, INDEX_PORT), handler)
    except OSError:  # taken: any port works, the build just cannot reuse its cached layers
        server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def copy_checkout(target: Path) -> Path:
    """The files git tracks or would track (what a clone holds, with local edits)."""
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """One compose project in a copy of the checkout: its .env, commands, containers, API."""

    def __init__(self, checkout: Path, *, project: str, settings: dict[str, str]) -> None:
        self.checkout = checkout
        self.project = project
        self.admin_key = secrets.token_hex(24)
        self.port = free_port()
        self.image = f"interest-clusters-compose-test:{project}"
        # .env as the README says: from .env.example, the secrets replaced, plus the build
        # variables that point at the stand-ins.
        env = (checkout / ".env.example").read_text()
        env = re.sub(
            r"(?m)^POSTGRES_PASSWORD=.*$", f"POSTGRES_PASSWORD={secrets.token_hex(16)}", env
        )
        env = re.sub(r"(?m)^APP_API_KEYS=.*$", f"APP_API_KEYS={self.admin_key}:admin", env)
        settings = settings | {"API_PORT": str(self.port), "IMAGE": self.image}
        env += "".join(f"\n{name}={value}" for name, value in settings.items()) + "\n"
        (checkout / ".env").write_text(env)
        self.environ = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=30,
        )
        self.timings: dict[str, float] = {}
        self.up_started = 0.0  # when the first `up` began

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(
            "docker",
            "compose",
            "-p",
            self.project,
            *args,
            cwd=self.checkout,
            env=self.environ,
            timeout=timeout,
            check=check,
        )

    def timed(
        self, name: str, *args: str, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        result = self.compose(*args, timeout=timeout)
        self.timings[name] = time.monotonic() - start
        return result

    def containers(self, service: str) -> list[str]:
        out = self.compose("ps", "--all", "--format", "{{.Name}}", service).stdout
        return sorted(out.split())

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout

    def container_metrics(self, container: str) -> str:
        """A worker's own /metrics (port 9100 is not published: read it from inside)."""
        return run(
            "docker",
            "exec",
            container,
            "python",
            "-c",
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:9100/metrics', timeout=4).read().decode())",
            check=False,
        ).stdout

    def trainers(self) -> list[str]:
        return [
            c
            for c in self.containers("worker")
            if re.search(r"(?m)^interest_worker_trainer 1\.0$", self.container_metrics(c))
        ]

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/v1/stats")
        response.raise_for_status()
        return response.json()

    def post_events(self, events: list[dict[str, Any]]) -> int:
        accepted = 0
        for start in range(0, len(events), 1000):
            response = self.http.post("/v1/events", json={"events": events[start : start + 1000]})
            assert response.status_code == 202, response.text
            accepted += response.json()["accepted"]
        return accepted

    def all_applied(self, received: int) -> dict[str, Any] | None:
        stats = self.stats()
        events = stats["events"]
        if events["received"] == received and events["applied"] == received:
            return stats
        return None

    def close(self) -> None:
        self.http.close()
