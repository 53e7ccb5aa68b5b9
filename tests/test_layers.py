"""The package's layers, read from its imports with `ast`: data flows one way.

inputs -> client -> runs -> widget / cli / export, with the simulator standing apart.
Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import
that goes up a layer is still a wrong way through the design. Only loops are judged on
what runs: two modules of one package may name each other's types for the type checker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "framepack_widgets"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: (module prefix, layer): a module may import its own layer and those below, never above.
LAYERS = [
    ("constants", 0),
    ("errors", 1),
    ("task", 1),
    ("_sqlite", 1),
    ("_environment", 1),
    ("_observers", 1),
    ("_assets", 1),
    ("_images", 2),
    ("inputs", 2),
    ("client", 3),
    ("runs", 4),
    ("compare", 5),
    ("sweeps", 5),
    ("timeline", 5),
    ("export", 6),
    ("gallery", 6),
    ("widget", 7),
    ("cli", 7),
]
#: The simulator stands apart: it may use only these, and only these may use it.
SIMULATOR = "simulator"
SIMULATOR_MAY_IMPORT = {"constants", "_sqlite", "errors"}
MAY_IMPORT_SIMULATOR = {"widget", "cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_only_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (they never run)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                found.update(id(n) for n in ast.walk(inner))
    return found


def _imports(name: str, path: Path, known: set[str], *, type_only: bool = True) -> set[str]:
    """The package modules that `name` imports, anywhere in its source (`type_only=False`:
    leaving out those under TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_only else _type_only_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import x` names a submodule when there is one
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `pkg.mod.Class` -> `pkg.mod`
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def _short(module: str) -> str:
    return module[len(PACKAGE) + 1 :] if module != PACKAGE else ""


def _layer(module: str) -> int | str | None:
    short = _short(module)
    if short == "":
        return None  # the package's lazy facade re-exports everything
    top = short.split(".")[0]
    if top == SIMULATOR:
        return SIMULATOR
    for prefix, layer in LAYERS:
        if top == prefix:
            return layer
    return "unassigned"


MODULES = _modules()
GRAPH = {name: _imports(name, path, set(MODULES)) for name, path in MODULES.items()}
RUNTIME_GRAPH = {name: _imports(name, path, set(MODULES), type_only=False) for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in MODULES if _layer(m) == "unassigned")
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_import_goes_up_a_layer() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in targets:
            theirs = _layer(target)
            top, their_top = _short(module).split(".")[0], _short(target).split(".")[0]
            if theirs is None:
                wrong.append(f"{module} imports the package facade {target}")
            elif mine == SIMULATOR:
                if theirs != SIMULATOR and their_top not in SIMULATOR_MAY_IMPORT:
                    wrong.append(f"the simulator's {module} imports {target}")
            elif theirs == SIMULATOR:
                if top not in MAY_IMPORT_SIMULATOR:
                    wrong.append(f"{module} imports the simulator's {target}")
            elif isinstance(mine, int) and isinstance(theirs, int) and theirs > mine:
                wrong.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_loops() -> None:
    graph = {m: t for m, t in RUNTIME_GRAPH.items() if _layer(m) is not None}
    assert _cycles(graph) == []


def test_the_loop_finder_finds_loops() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_cites_files_outside_the_repository(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    assert "DESIGN.md" not in text and "../shared" not in text and "reference/piapi" not in text
