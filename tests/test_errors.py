"""Every exception class the package defines derives from `FramepackError`, so
`except FramepackError` catches everything it raises (errors.py promises one base).

Each module is imported and every exception class defined in it is checked; the errors that
replaced built-in ones keep the built-in as a second base, so old `except` clauses still work.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from framepack_widgets.errors import (
    FileMissingError,
    FramepackError,
    InvalidInputError,
    MissingDependencyError,
    NoEventLoopError,
    RunNotFoundError,
    UsageError,
)

PACKAGE = "framepack_widgets"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE



def _module_names() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


MODULES = _module_names()
#: `__main__` modules run their command when imported: they are read, not imported.
SCRIPTS = [m for m in MODULES if m.endswith(".__main__")]


def _exception_classes(module_name: str) -> list[type[BaseException]]:
    module = importlib.import_module(module_name)
    return [
        value for _, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, BaseException) and value.__module__ == module_name
    ]


@pytest.mark.parametrize("module_name", [m for m in MODULES if m not in SCRIPTS])
def test_every_exception_class_derives_from_framepack_error(module_name: str) -> None:
    wrong = [
        f"{module_name}.{cls.__qualname__}"
        for cls in _exception_classes(module_name)
        if not issubclass(cls, FramepackError)
    ]
    assert wrong == [], f"derive these from framepack_widgets.errors.FramepackError: {wrong}"


@pytest.mark.parametrize("module_name", SCRIPTS)
def test_scripts_define_no_exceptions(module_name: str) -> None:
    path = ROOT.parent.joinpath(*module_name.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert classes == []


def test_the_checker_finds_an_exception_outside_the_hierarchy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fpw_stray_errors.py").write_text(
        "from framepack_widgets.errors import FramepackError\n"
        "class Fine(FramepackError):\n    pass\n"
        "class Stray(ValueError):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [cls.__name__ for cls in _exception_classes("fpw_stray_errors") if not issubclass(cls, FramepackError)]
    assert found == ["Stray"]


@pytest.mark.parametrize(("error", "builtin"), [
    (InvalidInputError, ValueError),
    (UsageError, TypeError),
    (NoEventLoopError, RuntimeError),
    (RunNotFoundError, KeyError),
    (FileMissingError, FileNotFoundError),
    (MissingDependencyError, ImportError),
])
def test_errors_that_replaced_a_builtin_keep_it_as_a_second_base(error: type, builtin: type) -> None:
    assert issubclass(error, FramepackError) and issubclass(error, builtin)


def test_run_errors_are_framepack_errors_and_keep_their_old_bases() -> None:
    from framepack_widgets.runs import DrivenElsewhereError, RunNotAttachedError
    from framepack_widgets.widget._uploads import UploadRefused

    assert issubclass(RunNotAttachedError, FramepackError) and issubclass(RunNotAttachedError, RuntimeError)
    assert issubclass(DrivenElsewhereError, FramepackError) and issubclass(DrivenElsewhereError, RuntimeError)
    assert issubclass(UploadRefused, FramepackError) and issubclass(UploadRefused, ValueError)


def test_a_missing_run_says_so_without_quotes() -> None:
    assert str(RunNotFoundError("no run 'x' in the store")) == "no run 'x' in the store"
