"""The package's layers and the privacy of its modules, read from the source with `ast`.

Layers: data flows one way, inputs -> client -> runs -> widget / cli / export, with the
simulator standing apart. Every import counts, also those inside functions and under
TYPE_CHECKING: a lazy import that goes up a layer is still a wrong way through the design.

Loops: no two modules import each other, directly or round a circle, not even for the type
checker alone (an import under TYPE_CHECKING is a dependency too: two modules that must
name each other's types are one concept cut in two, or want a Protocol of their own).

Private names: a name starting with `_` belongs to the module that defines it. A module may
read or write `x._name` only when `x` is `self` or `cls`, or a class or function defined in
that same module (`Handlers._on_hello`); never on any other object, whatever its class: the
checker cannot know an object's class, and a run built in a classmethod passes its private
fields to the constructor rather than setting them afterwards. `getattr`/`setattr`/`hasattr`
with a literal `"_name"` count the same. A module may not import an `_underscore` name from
another module either; importing a package-private *module* (`from . import _protocol`) is
allowed, as are dunders (`__class__`) and IPython's display hooks (`_repr_mimebundle_`,
`_ipython_display_`, `_repr_html_`, any `_repr_*_` / `_ipython_*_`), which exist to be
called from outside, and a named tuple's public methods (`_replace`, `_asdict`, ...).
"""

from __future__ import annotations

import ast
import re
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
    ("video", 1),
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
    ("service", 7),
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


def _from_stem(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a `from ... import` reads from, inside module `name`."""
    if not node.level:
        return node.module or ""
    package = name if is_package else name.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that `name` imports, anywhere in its source (TYPE_CHECKING included)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = _from_stem(node, name, is_package)
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


def test_no_import_loops_not_even_for_the_type_checker() -> None:
    graph = {m: t for m, t in GRAPH.items() if _layer(m) is not None}
    assert _cycles(graph) == []


def test_no_part_of_the_widget_imports_the_widget() -> None:
    """The widget wires its parts together; a part that imported it would be the old circle."""
    widget = f"{PACKAGE}.widget._widget"
    importers = sorted(m for m, targets in GRAPH.items() if widget in targets and m != f"{PACKAGE}.widget")
    assert importers == []


def test_the_loop_finder_finds_loops() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# --------------------------------------------------------------------------- private names
#: IPython's display protocol: hooks named to be called from outside the object.
_HOOK = re.compile(r"^_(repr|ipython)_[a-z]+_$")


#: Public by the standard library's own naming: a named tuple's methods (`urlsplit(...)._replace`).
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})


def _is_private(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and not _HOOK.match(name) and name not in NAMEDTUPLE_API


def private_reaches(source: str, module: str = "pkg.mod", known: frozenset[str] = frozenset(),
                    *, is_package: bool = False) -> list[str]:
    """Where `source` (module `module`) reads or writes another module's private names, as
    "line: code" (the rule is in this file's docstring). `known`: the package's modules, so
    that `from . import _module` is told apart from importing a private name."""
    tree = ast.parse(source)
    defined = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    own = {node.name for node in ast.walk(tree) if isinstance(node, defined)}

    def mine(value: ast.expr) -> bool:
        return isinstance(value, ast.Name) and (value.id in ("self", "cls") or value.id in own)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and not mine(node.value):
            found.append(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _is_private(node.args[1].value) and not mine(node.args[0])):
            found.append(node)
        elif isinstance(node, ast.ImportFrom):
            stem = _from_stem(node, module, is_package)
            if any(_is_private(a.name) and f"{stem}.{a.name}" not in known for a in node.names):
                found.append(node)
    return [f"{node.lineno}: {ast.unparse(node)}" for node in sorted(found, key=lambda n: n.lineno)]


def test_no_module_reaches_into_another_modules_private_names() -> None:
    known = frozenset(MODULES)
    reaches = [
        f"{module}:{reach}"
        for module, path in MODULES.items()
        for reach in private_reaches(path.read_text(encoding="utf-8"), module, known,
                                     is_package=path.name == "__init__.py")
    ]
    assert reaches == [], "private names reached from outside their module:\n" + "\n".join(reaches)


def test_the_privacy_checker_finds_a_reach() -> None:
    source = """
from . import _protocol
from .other import _helper
from .other import public


class Box:
    def _own(self):
        return self._state

    @classmethod
    def make(cls):
        return cls._own


def build(box, widget):
    Box._own(box)
    widget._lookup("x")
    box.child._state = 1
    getattr(widget, "_runs")
    getattr(box, "runs")
    widget._repr_mimebundle_()
    return box.__class__, build._cache, super()._ipython_display_()
"""
    found = private_reaches(source, "pkg.mod", frozenset({"pkg._protocol", "pkg.mod", "pkg.other"}))
    assert found == [
        "3: from .other import _helper",
        "18: widget._lookup",
        "19: box.child._state",
        "20: getattr(widget, '_runs')",
    ]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_cites_files_outside_the_repository(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    assert "DESIGN.md" not in text and "../shared" not in text and "reference/piapi" not in text
