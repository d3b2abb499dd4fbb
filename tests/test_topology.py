"""The production topology as OS processes: the commands docker-compose.yml runs (migrate, the
API with no inline worker, two workers) against PostgreSQL. Events stream in over HTTP; the
training worker is SIGKILLed mid-stream. The standby must take over, every accepted event must
be applied exactly once, and user queries must answer 200 throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.db.models import Event, ModelCheckpoint, UserProfile
from app.db.session import Database
from tests.deploy import compose, local_command
from tests.observability.conftest import sample

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TOPICS = {
    "space": (["rocket", "galaxy", "astronaut", "telescope", "mars rover"], "space mission"),
    "food": (["pasta", "sourdough", "curry", "chocolate cake", "ramen"], "cooking recipe"),
    "sport": (["football", "tennis", "marathon", "cycling", "basketball"], "match highlights"),
}
USERS_PER_TOPIC = 100
EVENTS_PER_USER = 10  # 3,000 events in all
BATCH = 100
WORKER_SETTINGS = {
    "APP_MIN_USERS_FIRST_FIT": "30",
    "APP_CLUSTERS": "3",
    "APP_BATCH_SIZE": "250",
    "APP_POLL_INTERVAL_SECONDS": "0.05",
    "APP_EVALUATE_INTERVAL_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream() -> list[dict]:
    """Users with clearly different topics, their events interleaved across users."""
    events = []
    for k in range(EVENTS_PER_USER):
        for topic, (things, kind) in TOPICS.items():
            for u in range(USERS_PER_TOPIC):
                thing = things[(u + k) % len(things)]
                events.append(
                    {
                        "event_id": f"{topic}-{u}-{k}",
                        "user_id": f"{topic}-{u}",
                        "type": "like" if k % 3 else "view",
                        "text": f"{thing} {kind} {k % 4}",
                    }
                )
    return events


def wait_for(what: str, predicate: Callable[[], object], timeout: float, logs: Callable[[], str]):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


class Topology:
    """The processes, their logs, and helpers to read them."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen] = {}

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """This machine's environment without APP_*, then the service's compose environment
        (its database URL pointed at the test database), then test tuning."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env |= {k: str(v) for k, v in compose()["services"][service]["environment"].items()}
        env["APP_DATABASE_URL"] = self.database_url
        env["APP_LOG_FORMAT"] = "json"  # as .env.example sets it; checked line by line below
        return env | extra

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)[-3000:]}" for n in self.processes)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture
def topology(db: Database, database_url: str, tmp_path: Path) -> Iterator[Topology]:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL cell: TEST_DATABASE_URL is not set")
    running = Topology(database_url, tmp_path)
    yield running
    running.stop_all()


class Poller(threading.Thread):
    """GETs one user's cluster again and again; remembers every answer that was not 200."""

    def __init__(self, base_url: str, user_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/v1/users/{user_id}/cluster"
        self.stop_event = threading.Event()
        self.statuses: Counter[int | str] = Counter()
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop_event.is_set():
                try:
                    response = client.get(self.url)
                    self.statuses[response.status_code] += 1
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.statuses["error"] += 1
                    self.failures.append(repr(exc))
                self.stop_event.wait(0.05)


def latest_version(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.max(ModelCheckpoint.version))) or 0


def trainer_of(topology: Topology, names: list[str]) -> str | None:
    holders = [n for n in names if "this worker is now the trainer" in topology.log(n)]
    assert len(holders) <= 1, topology.logs()
    return holders[0] if holders else None


@pytest.mark.postgres_only
def test_standby_takes_over_and_every_event_is_applied_once(topology: Topology, db: Database):
    logs = topology.logs
    migrate = subprocess.run(
        local_command("migrate"), env=topology.env("migrate"), cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr  # idempotent: the schema is already there

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    topology.start("api", local_command("api", host="127.0.0.1", port=port), topology.env("api"))
    workers = ["worker-1", "worker-2"]
    metrics_ports = {}
    for name in workers:
        metrics_ports[name] = free_port()
        command = local_command("worker", metrics_port=metrics_ports[name])
        topology.start(name, command, topology.env("worker", **WORKER_SETTINGS))

    http = httpx.Client(base_url=base_url, timeout=30)

    def ready() -> bool:
        try:
            return http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("the API", ready, 60, logs)
    assert topology.env("api")["APP_WORKER"] == "off"

    events = stream()
    poller = Poller(base_url, events[0]["user_id"])
    killed: str | None = None
    version_at_kill = 0
    try:
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            response = http.post("/v1/events", json={"events": batch})
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": len(batch), "duplicates": 0}
            if start == 0:
                poller.start()
            if killed is None and start + BATCH >= len(events) // 2:
                # Mid-stream: once a trainer has committed a model, kill it without warning.
                version_at_kill = wait_for("a first model", lambda: latest_version(db), 60, logs)
                killed = wait_for("a trainer", lambda: trainer_of(topology, workers), 30, logs)
                assert topology.processes[killed].poll() is None, logs()
                topology.processes[killed].send_signal(signal.SIGKILL)
                topology.processes[killed].wait(timeout=10)
                version_at_kill = latest_version(db)

        standby = next(n for n in workers if n != killed)

        def drained() -> bool:
            with db.read() as session:
                return not session.scalar(select(func.count()).where(Event.applied_at.is_(None)))

        wait_for("every event to be applied", drained, 60, logs)
        wait_for("the standby to train", lambda: latest_version(db) > version_at_kill, 60, logs)
        assert "this worker is now the trainer" in topology.log(standby), logs()
        time.sleep(0.5)  # a few more queries after the last model version
    finally:
        poller.stop_event.set()
        if poller.is_alive():
            poller.join(timeout=15)

    # Exactly once: each user's profile counts exactly the events accepted for them.
    expected = Counter(e["user_id"] for e in events)
    with db.read() as session:
        stored = session.scalar(select(func.count()).select_from(Event))
        counts = dict(session.execute(select(UserProfile.user_id, UserProfile.event_count)).all())
    assert stored == len(events)
    assert counts == dict(expected)

    # Queries kept answering while the trainer died and the standby took over.
    assert not poller.failures, poller.failures[:5]
    assert poller.statuses[200] > 20

    # Each process reports its own metrics: the standby now trains; the API sees the database.
    standby_metrics = httpx.get(f"http://127.0.0.1:{metrics_ports[standby]}/metrics").text
    assert sample(standby_metrics, "interest_worker_trainer") == 1
    assert sample(standby_metrics, "interest_worker_ready") == 1  # its compose health check
    assert sample(standby_metrics, "interest_worker_events_applied_total") > 0
    api_metrics = http.get("/metrics").text
    http.close()
    assert sample(api_metrics, "interest_events_pending") == 0
    assert sample(api_metrics, "interest_events_applied") == len(events)
    assert sample(api_metrics, "interest_model_version") == latest_version(db)

    # Every line every process wrote is one JSON object (APP_LOG_FORMAT=json).
    for name in topology.processes:
        for line in topology.log(name).splitlines():
            assert isinstance(json.loads(line), dict), f"{name}: {line!r}"
