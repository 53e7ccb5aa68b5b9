"""A notebook opened later without the kernel that drew its widget, in JupyterLab.

The notebook is executed headless (nbclient), its widget making one run (a widget opens on its
own inputs, so the run is made there, not taken from the store), then opened in JupyterLab from
a server that never ran it. The widget's cell has two outputs: the widget view
and its snapshot (framepack_widgets/widget/_snapshot.py). What shows where the widget was:

- not trusted (the server never signed it, as on another machine): JupyterLab renders only
  safe MIME types, so the snapshot shows: the last run's poster, status and prompt, and how to
  get the widget back;
- trusted, saved without widget state: JupyterLab's "Error displaying widget: model not found"
  gives way to the snapshot;
- trusted and saved with widget state: the widget is drawn from that state, gets no answer,
  shrinks to its header and "No answer from the kernel" line, and the snapshot shows below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fpw_browser import (
    ARTIFACTS,
    SMALL_IMAGES,
    UI_TIMEOUT_MS,
    JupyterServer,
    fast_simulator_env,
    save_small_copy,
    small_copy_wanted,
    start_server,
)

PROMPT = "the camera zooms in slowly on the red house"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    srv = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="snapshot", env=fast_simulator_env())
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def notebook(server: JupyterServer) -> Path:
    return executed(server, "snapshot.ipynb", store_widget_state=False)


def executed(server: JupyterServer, name: str, *, store_widget_state: bool, widget_args: str = "") -> Path:
    """The widget notebook (the widget's cell, then a cell making one run with it), run headless
    against the server's store, saved as `name`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(f"from framepack_widgets import FramepackWidget\nw = FramepackWidget({widget_args})\nw"))
    nb.cells.append(nbformat.v4.new_code_cell(
        "from PIL import Image\n"
        "w.start_image = Image.new('RGB', (320, 240), (60, 120, 220))\n"
        f"w.prompt = {PROMPT!r}\n"
        "run = await w.generate()"))
    env = {**os.environ, "FRAMEPACK_HOME": str(server.framepack_home), **fast_simulator_env()}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="python3", store_widget_state=store_widget_state, startup_timeout=120,
                       resources={"metadata": {"path": str(server.root / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    path = server.root / "notebooks" / name
    nbformat.write(nb, path)
    return path


def open_cell(page: object, server: JupyterServer, name: str) -> tuple[object, object]:
    """The widget cell's two outputs (the view's, the snapshot's) in a freshly opened notebook."""
    page.goto(server.lab_url(name), timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    children = page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".jp-OutputArea-child")  # type: ignore[attr-defined]
    children.nth(1).wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    return children.nth(0), children.nth(1)


def assert_snapshot_shows(page: object, snapshot: object, name: str) -> None:
    box = snapshot.locator(".fpw-snapshot")
    box.wait_for(timeout=UI_TIMEOUT_MS)
    img = box.locator("img[alt='Poster of the last run']")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    text = box.inner_text()
    snapshot.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert PROMPT in text and "completed" in text and "run this cell" in text, text
    assert "synthetic" in text


def test_untrusted_notebook_shows_the_snapshot_not_an_error(page: object, server: JupyterServer, notebook: Path) -> None:
    outputs = nbformat.read(notebook, as_version=4).cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    assert {"text/html", "text/plain"} == set(outputs[1]["data"])
    view, snapshot = open_cell(page, server, notebook.name)
    assert_snapshot_shows(page, snapshot, "snapshot-untrusted")
    assert view.inner_text().startswith("FramePack widget"), view.inner_text()  # its text/plain line
    assert "Error displaying widget" not in view.inner_text()


def test_trusted_notebook_without_widget_state_shows_the_snapshot_not_jupyterlabs_error(
        page: object, server: JupyterServer, notebook: Path) -> None:
    env = server.environment()
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(notebook)], env=env, check=True, capture_output=True)
    view, snapshot = open_cell(page, server, notebook.name)
    page.wait_for_function(  # type: ignore[attr-defined]
        "o => /Error displaying widget|Loading widget/.test(o.textContent)", arg=view.element_handle(), timeout=UI_TIMEOUT_MS
    )
    page.wait_for_timeout(3000)  # type: ignore[attr-defined]  # the restore settles: "Loading" turns into the error
    assert_snapshot_shows(page, snapshot, "snapshot-trusted")
    assert "model not found" in view.text_content()  # JupyterLab's message is there ...
    assert not view.is_visible(), "... and gives way to the snapshot"


def test_trusted_notebook_saved_with_widget_state_draws_it_then_gives_way_to_the_snapshot(
        page: object, server: JupyterServer, notebook: Path) -> None:
    path = executed(server, "with_state.ipynb", store_widget_state=True)
    assert nbformat.read(path, as_version=4).metadata["widgets"], "nbclient saved no widget state"
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(path)], env=server.environment(), check=True,
                   capture_output=True)
    view, snapshot = open_cell(page, server, path.name)
    root = view.locator(".fpw-root")
    root.wait_for(timeout=UI_TIMEOUT_MS)
    # Drawn from the saved state (the run's card, its prompt), the snapshot stepping aside ...
    assert PROMPT in root.locator(".fpw-card").first.text_content()
    assert not snapshot.is_visible()
    # ... until no kernel answers: the widget keeps its header and says so, the snapshot shows.
    notice = root.locator(":scope > .fpw-notice")
    notice.filter(has_text="No answer from the kernel").wait_for(timeout=UI_TIMEOUT_MS)
    assert "run this cell to use the widget again" in notice.inner_text()
    assert_snapshot_shows(page, snapshot, "snapshot-widget-state")
    assert root.locator(".fpw-head").is_visible() and not root.locator(".fpw-main").is_visible()
    shot = ARTIFACTS / "snapshot-widget-state-cell.png"
    page.locator(".jp-NotebookPanel .jp-Cell").first.screenshot(path=str(shot))  # type: ignore[attr-defined]
    if small_copy_wanted(SMALL_IMAGES / "no_kernel.png"):
        assert save_small_copy(shot, SMALL_IMAGES / "no_kernel.png").stat().st_size <= 60_000
