"""docker-compose.yml wires what the topology test proves: one migrate, an API without an
inline worker, two workers, PostgreSQL with a health check. These read the files; the stack
itself runs in Docker in tests/compose (`make compose-test`)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy import compose, local_command, service_command

ROOT = Path(__file__).resolve().parents[1]


def test_services_run_the_commands_the_topology_test_runs():
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert service_command("migrate") == ["python", "-m", "app", "migrate"]
    assert service_command("api") == [
        "python",
        "-m",
        "app",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert service_command("worker") == ["python", "-m", "app", "worker", "--metrics-port", "9100"]
    # The topology test derives its commands from these, changing only where they listen.
    api = local_command("api", host="127.0.0.1", port=1234)
    assert api[1:] == ["-m", "app", "serve", "--host", "127.0.0.1", "--port", "1234"]


def test_app_services_share_one_image_and_the_env_file():
    services = compose()["services"]
    for name in ("migrate", "api", "worker"):
        service = services[name]
        assert service["build"]["context"] == "."
        assert service["image"] == "${IMAGE:-interest-clusters:latest}"
        assert service["env_file"] == ".env"
        assert service["environment"]["APP_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in service["environment"]["APP_DATABASE_URL"]
    assert services["api"]["environment"]["APP_WORKER"] == "off"
    assert services["migrate"]["restart"] == "no"


def test_start_order_and_replicas():
    services = compose()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["worker"]["deploy"]["replicas"] == 2
    # Healthy once the model is loaded: the gauge app/worker/loop.py sets.
    health = " ".join(services["worker"]["healthcheck"]["test"])
    assert "9100/metrics" in health and "interest_worker_ready 1.0" in health


def test_postgres_has_a_health_check_and_a_named_volume():
    config = compose()
    postgres = config["services"]["postgres"]
    assert postgres["image"] == "${POSTGRES_IMAGE:-postgres:16}"  # official unless overridden
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in config["volumes"]


def test_env_example_documents_keys_and_env_is_ignored():
    example = (ROOT / ".env.example").read_text()
    assert "APP_API_KEYS=" in example and "POSTGRES_PASSWORD=" in example
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_dockerfile_basics():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#")
    # The official base image and PyTorch's CPU index stay the defaults.
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    # exactly the runtime lock: its +cpu torch from that index, the rest as pinned
    assert "COPY requirements/runtime.txt ./requirements.txt" in dockerfile
    assert '--index-url "$TORCH_INDEX_URL" "$(grep \'^torch==\' requirements.txt)"' in dockerfile
    assert "pip install --no-deps -r requirements.txt" in dockerfile and "pip check" in dockerfile
    assert "pyproject.toml" not in dockerfile  # nothing resolved from the ranges
    assert "USER app" in dockerfile and "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    # Dependencies before code: the code is copied last.
    assert dockerfile.rstrip().endswith("COPY app ./app")
    # The build context is an allow-list: .env, .git, .venv and var/ never reach the daemon.
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"requirements", "app", "migrations"}
    copied = {c.split("/")[0] for c in re.findall(r"(?m)^COPY (?!--from)(\S+)", dockerfile)}
    assert copied <= allowed, copied - allowed
