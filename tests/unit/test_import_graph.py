"""The floor plan holds: imports point down the layers only, and nothing imports in a circle.

``commands -> report -> tracking -> dissect -> packets`` and ``commands -> sources ->
packets`` (ARCHITECTURE.md).  Every import counts, also one inside a function or under
``TYPE_CHECKING``: a lazy import still makes the lower layer depend on the upper one, and
it only hides the cycle until the day the import order changes.  Read from the source
text with ``ast`` (nothing is imported), so the test runs in milliseconds.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "capdissect"

# Each top-level module or subpackage's layer: a module may import its own layer's
# modules (without a cycle) and those of lower layers, never a higher or a sibling one.
LAYERS: dict[str, int] = {
    "_version": 0, "errors": 0, "packets": 0, "addresses": 0,
    "dissect": 1,
    "sources": 2, "tracking": 2,  # siblings: neither imports the other
    "report": 3,
    "commands": 4,
    "export": 5, "demo": 5,
    "api": 6, "clihelp": 6,
    "cli": 7,
    "console": 8,
    "__main__": 9,
    "": 10,  # the package's __init__: the public face imports anything, nothing imports it
}

PUBLIC_MODULES = [
    "capdissect.tracking.tcp", "capdissect.tracking.states", "capdissect.tracking.tracker",
    "capdissect.tracking.stream", "capdissect.tracking.eventlog",
    "capdissect.sources.files", "capdissect.sources.pcapng", "capdissect.sources.writer",
    "capdissect.sources.live", "capdissect.sources.live.ring", "capdissect.sources.strace",
    "capdissect.dissect.stack", "capdissect.dissect.tcp_options",
    "capdissect.report.tcpdump.printer", "capdissect.report.json.packet",
    "capdissect.report.tables.flows", "capdissect.report.timeline.ladder",
    "capdissect.report.handout.lesson", "capdissect.commands.read",
    "capdissect.commands.handout", "capdissect.commands.reports", "capdissect.api",
    "capdissect.demo.oracle",
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules that *name* imports, wherever in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from capdissect.report import flows" imports the module capdissect.report.flows
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_top_level_module_has_a_layer() -> None:
    missing = sorted({layer(name) for name in modules()} - set(LAYERS))
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_imports_point_down_only() -> None:
    upward = [f"{name} -> {target}"
              for name, targets in sorted(graph().items()) for target in sorted(targets)
              if layer(name) != layer(target) and LAYERS[layer(target)] >= LAYERS[layer(name)]]
    assert upward == []


def test_the_checks_would_see_a_cycle_and_an_upward_import() -> None:
    """The two checks above on a graph with the faults planted (so they cannot pass by
    finding nothing to look at)."""
    edges = graph()
    assert len(edges) > 100 and sum(map(len, edges.values())) > 400
    edges["capdissect.tracking.states"].add("capdissect.tracking.tcp")
    assert ["capdissect.tracking.states", "capdissect.tracking.tcp"] in cycles(edges)
    assert LAYERS[layer("capdissect.report.text")] > LAYERS[layer("capdissect.tracking.tcp")]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_the_public_module_paths_import(name: str) -> None:
    assert importlib.import_module(name).__name__ == name


def test_the_api_names_are_still_functions() -> None:
    """``capdissect.track`` and ``capdissect.capture`` were shadowed by subpackages of the
    same name; now the subpackages are ``tracking`` and ``sources``."""
    import capdissect
    import capdissect.sources.files
    import capdissect.tracking.tcp
    assert callable(capdissect.track) and callable(capdissect.capture)
    assert callable(capdissect.read)
    assert capdissect.lesson.write_handout is importlib.import_module(
        "capdissect.commands.handout").write_handout


def test_the_old_module_paths_import_as_the_modules_they_became() -> None:
    """``capdissect.lesson.write_handout`` is documented; the old loose modules' paths
    still import, as the very modules they moved to, which keep their own names."""
    import capdissect.lesson as lesson
    from capdissect.reader import ReadOptions
    handout = importlib.import_module("capdissect.commands.handout")
    assert lesson is handout and lesson.__spec__ is not None
    assert lesson.__spec__.name == "capdissect.commands.handout"
    assert ReadOptions is importlib.import_module("capdissect.commands.read").ReadOptions


def test_no_module_inside_imports_the_package_face() -> None:
    inside = [name for name, targets in graph().items() if "capdissect" in targets]
    assert inside == []
