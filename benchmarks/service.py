"""The service under test in its own processes, and an HTTP client for its public API.

`Service` is the one launcher: `python -m app serve` on a free port with `APP_*` settings and
an admin API key (so auth is on every measured path), and `Service.worker()` for a separate
`python -m app worker` on the same settings. Inherited `APP_*` variables are dropped, so a
developer's shell does not change a benchmark. The caller prepares (and migrates) the database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`python -m app serve` in its own process. Settings are keyword arguments named like the
    fields of `app.config.Settings` (`worker="off"` is `APP_WORKER=off`)."""

    def __init__(self, database_url: str, *, log_dir: Path, **settings: object) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        self.env |= {
            "APP_DATABASE_URL": database_url,
            "APP_API_KEYS": f"{API_KEY}:admin",
            "APP_LOG_LEVEL": "WARNING",  # no per-request access log on the hot path
        }
        self.env |= {f"APP_{name.upper()}": str(value) for name, value in settings.items()}

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, *, timeout: float = 300.0) -> None:
        """Start the server and wait until `/readyz` answers 200 (with an inline worker: once
        its embedding model is loaded). Its output goes to `log_dir/serve-PORT.log`."""
        _exit_on_sigterm()
        self.process = self._spawn(["serve", "--port", str(self.port)], f"serve-{self.port}.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the service exited with {self.process.returncode}; see its log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"the service was not ready within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        self.process = None

    @contextlib.contextmanager
    def worker(self) -> Iterator[subprocess.Popen[bytes]]:
        """`python -m app worker` on the same settings (run the API with `worker="off"`)."""
        _exit_on_sigterm()
        process = self._spawn(["worker"], "worker.log")
        try:
            yield process
        finally:
            _stop(process)

    def run(self, *args: str) -> str:
        """`python -m app ARGS` on the same settings (an operator command); its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / log_name).open("ab") as log:  # the child keeps its own handle
            return subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def _exit_on_sigterm() -> None:
    """A terminated benchmark still stops the processes it started: SIGTERM becomes SystemExit,
    so the `with` blocks around them unwind."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Client:
    """The public HTTP API, nothing else (the load itself comes from loadgen.py)."""

    def __init__(self, url: str, api_key: str | None = API_KEY) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=120.0)

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def post_items(self, items: dict[str, str], per_request: int = 1000) -> None:
        rows = [{"item_id": k, "text": v} for k, v in items.items()]
        for i in range(0, len(rows), per_request):
            self._ok(self.http.post("/v1/items", json={"items": rows[i : i + per_request]}))

    def post_events(self, events: list[dict[str, Any]], per_request: int = 1000) -> int:
        accepted = 0
        for i in range(0, len(events), per_request):
            body = self._ok(
                self.http.post("/v1/events", json={"events": events[i : i + per_request]})
            )
            accepted += body["accepted"] + body["duplicates"]
        return accepted

    def stats(self) -> dict[str, Any]:
        return self._ok(self.http.get("/v1/stats"))

    def cluster(self, user: str) -> dict[str, Any]:
        return self._ok(self.http.get(f"/v1/users/{user}/cluster"))

    def recommendations(self, user: str, limit: int = 20) -> dict[str, Any]:
        return self._ok(self.http.get(f"/v1/users/{user}/recommendations?limit={limit}"))

    def wait_rankings(self, user: str, version: int, *, timeout: float = 300.0) -> None:
        """Until the worker has computed the cluster rankings of `version` (or a later one)."""
        deadline = time.monotonic() + timeout
        while (self.recommendations(user, 1)["model_version"] or 0) < version:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no rankings of model version {version} after {timeout}s")
            time.sleep(0.2)

    def metrics(self) -> dict[str, Any] | None:
        response = self.http.get("/v1/clusters/metrics")
        return None if response.status_code == 404 else self._ok(response)

    def metrics_history(self) -> dict[str, Any]:
        """{"snapshots": [...], "refits": [...]}, oldest first."""
        response = self.http.get("/v1/clusters/metrics/history", params={"limit": 1000})
        return self._ok(response)

    def k_report(self) -> dict[str, Any] | None:
        response = self.http.get("/v1/clusters/k")
        return None if response.status_code == 404 else self._ok(response)

    def refit_running(self) -> bool:
        """From /metrics: whether the inline trainer is fitting or judging a refit."""
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith("interest_model_refit_running "):
                return float(line.split()[1]) > 0
        return False

    def wait_applied(self, *, poll: float = 0.1, timeout: float = 900.0) -> dict[str, Any]:
        """Until every accepted event is folded into its profile; returns the stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["events"]["pending"] == 0:
                return stats
            if stats["events"]["waiting_for_item"] == stats["events"]["pending"]:
                raise RuntimeError(f"events wait for items that never came: {stats['events']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"events not applied after {timeout}s: {stats['events']}")
            time.sleep(poll)

    def wait_model(self, *, timeout: float) -> dict[str, Any]:
        """Until every event is applied and a model exists; returns the stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.wait_applied(timeout=timeout)
            if stats["model"]["version"] is not None:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"no model after {timeout}s: {stats}")
            time.sleep(0.5)

    def wait_final_model(self, *, settle: float, timeout: float = 300.0) -> dict[str, Any]:
        """Once nothing is pending: wait until the model version stops moving for `settle`
        seconds and a metrics snapshot of that version exists; returns that snapshot."""
        self.wait_applied()
        deadline = time.monotonic() + timeout
        version, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now_version = self.stats()["model"]["version"]
            if self.refit_running():  # the refit it is fitting will change the model
                since = time.monotonic()
            if now_version != version:
                version, since = now_version, time.monotonic()
            metrics = self.metrics()
            stable = time.monotonic() - since >= settle
            if stable and metrics is not None and metrics["model_version"] == version:
                return metrics
            time.sleep(0.2)
        raise TimeoutError(f"no metrics snapshot for a settled model version (at {version})")
