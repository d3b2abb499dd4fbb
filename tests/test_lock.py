"""The lock files: complete for pyproject.toml, consistent with each other, and portable.

`make install` proves the installed tree with `pip check`; these catch a lock edited by hand
or left behind by pyproject.toml before anything is installed from it (the image included)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)$")


def pins(name: str) -> dict[str, Version]:
    """Package -> version of a lock file; every requirement line must be an exact pin."""
    found = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        found[canonicalize_name(match[1])] = Version(match[2])
    return found


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def unmet(requirements: list[str], locked: dict[str, Version]) -> list[str]:
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not locked")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    return problems


def test_runtime_lock_meets_every_dependency():
    assert unmet(project()["dependencies"], pins("runtime.txt")) == []


def test_dev_lock_meets_every_dependency_and_extra():
    extras = [r for group in project()["optional-dependencies"].values() for r in group]
    assert unmet(project()["dependencies"] + extras, pins("dev.txt")) == []


def test_tests_run_on_the_versions_the_image_installs():
    runtime, dev = pins("runtime.txt"), pins("dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_torch_is_the_cpu_build():
    """PyPI's torch of the same version is a multi-GB CUDA build."""
    for name in ("runtime.txt", "dev.txt"):
        assert pins(name)["torch"].local == "cpu"


def test_locks_name_no_machine_specific_source():
    """Indexes and find-links differ per machine (here a local wheel directory)."""
    for name in ("runtime.txt", "dev.txt"):
        text = (ROOT / "requirements" / name).read_text()
        assert not re.search(r"^\s*-|file://|/opt/", text, re.MULTILINE), name
