"""The service under evaluation: a subprocess on a fresh SQLite file, and an HTTP client for it."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
# Tables a warm database keeps: only the embedding cache (keyed by model id + text hash), so a
# copy of it changes how fast texts are embedded and nothing else.
KEEP_TABLES = {"embedding", "alembic_version"}


class Client:
    """The public HTTP API, nothing else."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
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

    def metrics(self) -> dict[str, Any] | None:
        response = self.http.get("/v1/clusters/metrics")
        return None if response.status_code == 404 else self._ok(response)

    def metrics_history(self) -> dict[str, Any]:
        """{"snapshots": [...], "refits": [...]}, oldest first."""
        return self._ok(self.http.get("/v1/clusters/metrics/history", params={"limit": 1000}))

    def k_report(self) -> dict[str, Any] | None:
        response = self.http.get("/v1/clusters/k")
        return None if response.status_code == 404 else self._ok(response)

    def refit_running(self) -> bool:
        """From /metrics: whether the inline trainer is fitting or judging a refit."""
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith("interest_model_refit_running "):
                return float(line.split()[1]) > 0
        return False

    def clusters(self) -> dict[str, Any]:
        return self._ok(self.http.get("/v1/clusters"))

    def wait_applied(self, *, poll: float = 0.1, timeout: float = 900.0) -> dict[str, Any]:
        """Until every accepted event is folded into its profile."""
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


class Service:
    """`python -m app serve` on a free port with APP_* settings, on its own SQLite file."""

    def __init__(self, run_dir: Path, settings: dict[str, str], *, warm_db: Path | None) -> None:
        self.run_dir = run_dir
        self.db_path = run_dir / "app.db"
        self.settings = settings
        self.warm_db = warm_db
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env.update(self.settings)
        env["APP_DATABASE_URL"] = self.database_url
        env["APP_WORKER"] = "inline"
        return env

    def __enter__(self) -> Service:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        if self.warm_db is not None and self.warm_db.exists():
            shutil.copyfile(self.warm_db, self.db_path)
        self.app("migrate")
        self.start()
        return self

    def app(self, *args: str) -> str:
        """`python -m app ARGS` on this service's database and settings (an operator command)."""
        done = subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=REPO,
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def start(self) -> None:
        log = (self.run_dir / "service.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited; see {self.run_dir / 'service.log'}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"service not ready after {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save_warm_db(self, target: Path) -> None:
        """Keep this run's embedding cache (and nothing else) for the next run to start from."""
        tmp = target.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(self.db_path) as conn:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        with sqlite3.connect(tmp) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                if table not in KEEP_TABLES and not table.startswith("sqlite_"):
                    conn.execute(f'DELETE FROM "{table}"')
        with sqlite3.connect(tmp) as conn:
            conn.execute("VACUUM")
        tmp.replace(target)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
