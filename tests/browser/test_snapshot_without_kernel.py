"""A notebook opened later without the kernel that drew its widget, in JupyterLab.

The notebook is executed headless (nbclient, no widget state saved) with one finished run
in the store, then opened in JupyterLab from a server that never ran it. What shows where
the widget was (see framepack_widgets/widget/_snapshot.py):

- not trusted (the server never signed it, as on another machine): JupyterLab renders only
  safe MIME types, so the widget's text/html snapshot shows: the last run's status, its prompt
  and how to get the widget back, instead of the bare repr (and the run's poster, for a widget
  made with poster_in_notebook=True);
- trusted: JupyterLab's widget renderer takes the output whatever else it holds, and without
  saved state says "Error displaying widget: model not found" (the README says so);
- trusted and saved with widget state: the widget is drawn from that state (the run's card,
  its prompt), and since no kernel answers it, it says so and how to get it back.
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

from fpw_browser import ARTIFACTS, UI_TIMEOUT_MS, JupyterServer, fast_simulator_env, start_server
from gallery_runs import make_runs

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
    store, _ = make_runs(server.framepack_home, [{"prompt": PROMPT}])
    store.close()
    return executed(server, "snapshot.ipynb", store_widget_state=False)


def executed(server: JupyterServer, name: str, *, store_widget_state: bool, widget_args: str = "") -> Path:
    """The one-cell widget notebook, run headless against the server's store, saved as `name`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(f"from framepack_widgets import FramepackWidget\nw = FramepackWidget({widget_args})\nw"))
    env = {**os.environ, "FRAMEPACK_HOME": str(server.framepack_home)}
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


def first_output(page: object, server: JupyterServer, name: str = "snapshot.ipynb") -> object:
    page.goto(server.lab_url(name), timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    out = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first  # type: ignore[attr-defined]
    out.wait_for(timeout=UI_TIMEOUT_MS)
    return out


def test_untrusted_notebook_shows_the_snapshot_not_an_error(page: object, server: JupyterServer, notebook: Path) -> None:
    saved = nbformat.read(notebook, as_version=4).cells[0].outputs[0]["data"]
    assert {"text/html", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(saved)
    out = first_output(page, server)
    page.wait_for_function("o => o.textContent.includes('snapshot')", arg=out.element_handle(), timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    assert out.get_attribute("data-mime-type") == "text/html"
    text = out.inner_text()
    out.screenshot(path=str(ARTIFACTS / "snapshot-untrusted.png"))
    assert PROMPT in text and "completed" in text and "run this cell" in text, text
    assert "synthetic" in text
    assert "Error displaying widget" not in text


def test_untrusted_notebook_shows_the_poster_when_the_widget_was_asked_to_save_it(
        page: object, server: JupyterServer, notebook: Path) -> None:
    path = executed(server, "with_poster.ipynb", store_widget_state=False, widget_args="poster_in_notebook=True")
    out = first_output(page, server, path.name)
    img = out.locator("img[alt='Poster of the last run']")
    img.wait_for(timeout=UI_TIMEOUT_MS)
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    out.screenshot(path=str(ARTIFACTS / "snapshot-poster.png"))
    assert PROMPT in out.inner_text()


def test_trusted_notebook_without_widget_state_gets_jupyterlabs_own_message(page: object, server: JupyterServer,
                                                                             notebook: Path) -> None:
    env = server.environment()
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(notebook)], env=env, check=True, capture_output=True)
    out = first_output(page, server)
    page.wait_for_function(  # type: ignore[attr-defined]
        "o => /Error displaying widget|Loading widget/.test(o.textContent)", arg=out.element_handle(), timeout=UI_TIMEOUT_MS
    )
    page.wait_for_timeout(3000)  # type: ignore[attr-defined]  # the restore settles: "Loading" turns into the error
    out.screenshot(path=str(ARTIFACTS / "snapshot-trusted.png"))
    assert "Error displaying widget: model not found" in out.inner_text()


def test_trusted_notebook_saved_with_widget_state_draws_it_and_says_no_kernel_answers(
        page: object, server: JupyterServer, notebook: Path) -> None:
    path = executed(server, "with_state.ipynb", store_widget_state=True)
    assert nbformat.read(path, as_version=4).metadata["widgets"], "nbclient saved no widget state"
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(path)], env=server.environment(), check=True,
                   capture_output=True)
    out = first_output(page, server, path.name)
    root = out.locator(".fpw-root")
    root.wait_for(timeout=UI_TIMEOUT_MS)
    # Drawn from the saved state: the run's card and its prompt, with no kernel behind them.
    assert PROMPT in root.locator(".fpw-card").first.inner_text()
    notice = root.locator(":scope > .fpw-notice")
    notice.filter(has_text="No answer from the kernel").wait_for(timeout=UI_TIMEOUT_MS)
    out.screenshot(path=str(ARTIFACTS / "snapshot-widget-state.png"))
    assert "run this cell to use the widget again" in notice.inner_text()
