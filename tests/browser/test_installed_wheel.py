"""The wheel, installed in a venv outside the repository, draws the widget in JupyterLab.

What this proves: `pip wheel .` makes a complete package (the frontend built into
framepack_widgets/static/ by the build hook), and a kernel that imports framepack_widgets
from that install (not from the repository, not from the editable install) draws a working
widget. To stay fast (no download of JupyterLab and its dependencies for each run), the
new venv gets only the wheel; a .pth line lets it import the *dependencies* from the test
venv, and JupyterLab's application, extensions and server config are taken from there too
(JUPYTERLAB_DIR, JUPYTER_PATH, JUPYTER_CONFIG_PATH). The editable install of the test venv
is not active in the new one (its .pth file is not processed: that folder is no site dir of
the new venv), and the kernel checks that framepack_widgets and its static/ files come from
the new venv. A fully fresh venv (`pip install <wheel> jupyterlab ipykernel`) was checked by
hand too; it takes about a minute to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from fpw_browser import REPO, UI_TIMEOUT_MS, JupyterServer, NotebookPage, fast_simulator_env, need_browser

CHECK = "wheel_check.ipynb"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv outside the repository holding only the freshly built wheel."""
    need_browser()
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(work)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel, = work.glob("framepack_widgets-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # The dependencies (and only those: no .pth of that folder runs) from the test venv, after
    # the new venv's own site-packages, so its framepack_widgets comes first.
    (purelib / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # `jupyter lab` runs the `jupyter-lab` command found first on PATH: this venv's own.
    lab = venv / "bin" / "jupyter-lab"
    lab.write_text(f"#!{python}\nimport sys\nfrom jupyterlab.labapp import main\nsys.exit(main())\n")
    lab.chmod(0o755)
    return python


@pytest.fixture(scope="module")
def wheel_lab(wheel_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    share = Path(sys.prefix) / "share" / "jupyter"
    env = {
        **fast_simulator_env(),
        "JUPYTERLAB_DIR": str(share / "lab"),
        "JUPYTER_PATH": str(share),
        "JUPYTER_CONFIG_PATH": str(Path(sys.prefix) / "etc" / "jupyter"),
    }
    server = JupyterServer(tmp_path_factory.mktemp("srv"), app="lab", name="installed-wheel", env=env, python=str(wheel_venv))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_installed_wheel_draws_the_widget_in_jupyterlab(page: object, wheel_lab: JupyterServer, wheel_venv: Path) -> None:
    venv = wheel_venv.parent.parent
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import json, sys, framepack_widgets, framepack_widgets._assets as assets\n"
            "print(json.dumps({'package': framepack_widgets.__file__, 'static': str(assets.STATIC),\n"
            "                  'built': sorted(p.name for p in assets.STATIC.iterdir()), 'path': sys.path}))"
        ),
        nbformat.v4.new_code_cell("from framepack_widgets import FramepackWidget\nFramepackWidget()"),
    ]
    nbformat.write(notebook, wheel_lab.root / "notebooks" / CHECK)
    nb = NotebookPage(page, wheel_lab).open_lab(CHECK)
    nb.run_all()
    said = nb.page.locator(".jp-OutputArea-output").first.inner_text()
    try:
        seen = json.loads(said)
    except ValueError:
        raise AssertionError(f"the kernel could not look at the installed package:\n{said}") from None
    assert Path(seen["package"]).is_relative_to(venv), f"framepack_widgets came from {seen['package']}, not the wheel's venv"
    assert Path(seen["static"]).is_relative_to(venv), seen["static"]
    assert seen["built"] == ["gallery.css", "gallery.js", "teacher.css", "teacher.js", "widget.css", "widget.js"], seen["built"]
    assert not any(Path(p).resolve() == REPO for p in seen["path"] if p), "the repository is on the kernel's sys.path"

    root = nb.widget()
    root.wait_for(timeout=UI_TIMEOUT_MS)
    assert "synthetic" in root.locator(".fpw-badge").inner_text().lower()
    for name in ("Generate", "Cancel"):
        assert root.get_by_role("button", name=name, exact=True).count() == 1, name
    assert root.get_by_label("Start image", exact=True).get_attribute("type") == "file"
    # The kernel answers the view (its hello), so the widget is live, not a saved snapshot.
    nb.page.wait_for_function("r => !r.classList.contains('fpw-quiet') && r.dataset.backend === 'simulator'",
                              arg=root.element_handle(), timeout=UI_TIMEOUT_MS)
    assert not nb.errors_in_outputs()
