"""docker-compose.yml, read once: the topology test runs exactly the commands compose runs."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service_command(service: str) -> list[str]:
    return list(compose()["services"][service]["command"])


def local_command(service: str, **options: object) -> list[str]:
    """The service's command for this machine: this Python, and `--option value` replaced
    (e.g. port=0 -> the API's port) so several processes can share one host."""
    command = service_command(service)
    assert command[0] == "python", command
    command[0] = sys.executable
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        assert flag in command, f"{service} has no {flag}: {command}"
        command[command.index(flag) + 1] = str(value)
    return command
