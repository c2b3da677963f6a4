"""The package's layers (docs/architecture.md): no import circle, no import from a layer above.

Every ``import`` and ``from ... import`` of an hnprog module is read from the source with
``ast``, at any depth (an import inside a function is still an import), and checked against the
layer table below, which docs/architecture.md draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hnprog"

# bottom (0) to top; a module may import from its own layer or below
LAYERS: dict[str, int] = {
    "hnprog.errors": 0,
    "hnprog.io": 0,
    "hnprog.cpu": 0,
    "hnprog.runtime": 0,
    "hnprog.geometry": 1,
    "hnprog.survival": 1,
    "hnprog.models": 2,
    "hnprog.losses": 2,
    "hnprog.metrics": 2,
    "hnprog.splits": 2,
    "hnprog.plotting": 2,
    "hnprog.reporting": 2,
    "hnprog.evaluation": 2,
    "hnprog.transforms": 3,
    "hnprog.data": 4,
    "hnprog.presets": 5,
    "hnprog.radiomics": 6,
    "hnprog.training": 7,
    "hnprog.predict": 8,
    "hnprog.demo": 9,
    "hnprog.cli": 10,
    "hnprog.__main__": 10,
    # the root __init__ (the public API) imports its names lazily, by string, and statically
    # only hnprog.cpu: `from hnprog import __version__` is a bottom-layer import
    "hnprog": 0,
}
# Test support may use anything; nothing in the library may use it.
TESTING = "hnprog.testing"
# Deprecated module paths kept for one release: they only re-export, from any layer.
SHIMS = {"hnprog.hub", "hnprog.cards", "hnprog.radiomics.extract"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a module: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def imports_of(path: Path, module: str) -> set[str]:
    """The hnprog modules that ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            # `from hnprog.data import loading` imports the submodule hnprog.data.loading
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                        PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py").exists():
                    found.add(candidate)
    return {name for name in found if name == "hnprog" or name.startswith("hnprog.")}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        graph[module] = {m for m in imports_of(path, module) if m != module}
    return graph


GRAPH = import_graph()


def test_every_module_has_a_layer():
    unplaced = [m for m in GRAPH if layer_of(m) is None and not m.startswith(TESTING)]
    assert not unplaced, f"add these modules to LAYERS and docs/architecture.md: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(TESTING)
                                          and m not in SHIMS))
def test_no_import_from_a_layer_above(module):
    own = layer_of(module)
    upward = sorted(m for m in GRAPH[module] if m not in SHIMS and (
        m.startswith(TESTING) or (layer_of(m) or 0) > own))
    assert not upward, f"{module} (layer {own}) imports from above: " + ", ".join(
        f"{m} (layer {layer_of(m)})" for m in upward)


def test_no_import_circle():
    """No cycle among modules (a package's ``__init__`` counts as a module)."""
    graph = {m: {d for d in deps if d in GRAPH} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ re-exporting its own submodules, which import each other but not
    # the __init__, is no cycle; any loop through two different modules is.
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)
