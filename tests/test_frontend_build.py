"""The frontend as users get it: js/src/ bundled into framepack_widgets/static/ by the Python
build (js/hatch_build.py runs js/build.mjs), shipped in the wheel, never committed, and small.

The JS unit tests (js/tests/, `node --test js/tests/`) test the modules and the built bundle
itself in jsdom; the browser tests draw the built widget in JupyterLab, Notebook 7 and marimo.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from framepack_widgets import FramepackWidget
from framepack_widgets._assets import STATIC, frontend_file
from framepack_widgets.widget._embedded import asset
from frontend_size import BUNDLE_BUDGET, report, shipped_sizes

REPO = Path(__file__).resolve().parents[1]
BUILT = ("widget.js", "widget.css", "gallery.js", "gallery.css")


def test_the_shipped_widget_fits_45_kb_minified() -> None:
    print(report())
    total = sum(shipped_sizes().values())
    assert total <= BUNDLE_BUDGET, f"static/widget.js + widget.css weigh {total:,} B, over {BUNDLE_BUDGET:,} B"


def test_the_widget_ships_the_built_files_only() -> None:
    # anywidget is given the minified bundle, not the sources.
    esm = (STATIC / "widget.js").read_text(encoding="utf-8")
    assert str(FramepackWidget._esm) == esm
    assert str(FramepackWidget._css) == (STATIC / "widget.css").read_text(encoding="utf-8")
    assert "export{" in esm.replace(" ", "") and "\n  " not in esm, "not the minified ES module"
    for name in BUILT:
        assert frontend_file(name) == STATIC / name
    assert frontend_file("panels/history.js") is None, "a source module is no shipped file"


def test_a_missing_build_is_said_in_the_cell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import framepack_widgets._assets as assets

    monkeypatch.setattr(assets, "STATIC", tmp_path)
    assert frontend_file("widget.js") is None
    module = asset("widget.js")
    assert isinstance(module, str) and module.startswith("export default { render({ el })")
    assert "was not built" in module and "pip install ." in module and "bash .ci/setup" in module
    assert asset("widget.css") == ""


def test_no_built_file_is_tracked_by_git() -> None:
    # static/ is ignored; the old hand-written copies in js/ are gone for good.
    paths = ["framepack_widgets/static", *(f"js/{name}" for name in BUILT)]
    tracked = subprocess.run(["git", "ls-files", "--", *paths],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not tracked, f"built files are tracked by git: {tracked}"
    ignored = subprocess.run(["git", "check-ignore", *(f"framepack_widgets/static/{n}" for n in BUILT)],
                             cwd=REPO, capture_output=True, text=True).stdout.split()
    assert len(ignored) == len(BUILT), f"not ignored by git: {set(BUILT) - {Path(i).name for i in ignored}}"


@pytest.mark.slow
def test_the_wheel_holds_the_built_frontend(tmp_path: Path) -> None:
    """`pip wheel .` from the repository runs the build hook: the wheel has static/, not js/."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel, = tmp_path.glob("framepack_widgets-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in BUILT:
            path = f"framepack_widgets/static/{name}"
            assert path in names, f"{path} is not in the wheel"
            assert zf.read(path) == (STATIC / name).read_bytes(), f"the wheel's {name} is not the build's"
    assert not [n for n in names if n.startswith("js/") or "/src/" in n], "sources in the wheel"
