"""The shape of app/, read from its source: the data path goes one way, the clustering core
stands alone, and no module imports itself back through others."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
# The data path, upstream first. A room may import the rooms before it, never those after it.
DATA_PATH = ("event", "profile", "model", "user")
# What wires the rooms together (loops, the app, entry points, cross-room reports): nothing on
# the data path, and nothing in the core, may reach up into them.
WIRING = ("main", "cli", "worker", "stats", "observability", "health", "dashboard")


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in APP.rglob("*.py")}


def app_imports(path: Path) -> set[str]:
    """The app modules `path` imports anywhere in it (imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
            # `from app.model import repository` imports the module app.model.repository
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


def room(module: str) -> str:
    """app.model.trainer -> model; app.errors -> errors."""
    return module.split(".")[1] if "." in module else ""


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


GRAPH = {module: app_imports(path) for module, path in MODULES.items()}


def edges(source_room: str) -> Iterable[tuple[str, str]]:
    for module, imported in GRAPH.items():
        if room(module) == source_room:
            yield from ((module, target) for target in imported)


def test_the_graph_sees_the_imports_it_should() -> None:
    # Guards the checks below against passing because the parser found nothing.
    assert "app.profile.repository" in GRAPH["app.model.trainer"]
    assert "app.clustering.fitting" in GRAPH["app.model.consolidation"]
    assert "app.main" in GRAPH["app.cli"]  # an import inside a function counts too


def test_the_clustering_core_imports_nothing_else_from_app() -> None:
    outside = [(m, t) for m, t in edges("clustering") if room(t) != "clustering"]
    assert outside == []


def test_the_data_path_reads_one_way() -> None:
    backwards = [
        (module, target)
        for position, source in enumerate(DATA_PATH)
        for module, target in edges(source)
        if room(target) in DATA_PATH[position + 1 :] or room(target) in WIRING
    ]
    assert backwards == []


def test_the_core_reaches_no_wiring() -> None:
    assert [(m, t) for m, t in edges("clustering") if room(t) in WIRING] == []


def test_no_import_cycles_between_modules_or_rooms() -> None:
    assert find_cycle(GRAPH) is None
    rooms: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        rooms.setdefault(room(module), set()).update(
            room(t) for t in imported if room(t) != room(module)
        )
    assert find_cycle(rooms) is None


def test_find_cycle_finds_one_and_only_one_that_exists() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
