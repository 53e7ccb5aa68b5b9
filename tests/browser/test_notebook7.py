"""The same core flow in Notebook 7 (`jupyter notebook`): /tree → notebooks/quickstart.ipynb.

Notebook 7 is a different shell around the same widget manager (no status bar, a new
tab per notebook), so the widget must work there as well: upload, generate with the
status streaming while the kernel is idle, and the finished video playing inline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpw_browser import ARTIFACTS, JupyterServer, NotebookPage, assert_kernel_answered, generate_and_play, upload_start_image


@pytest.fixture
def notebook7(page: object, notebook7_server: JupyterServer) -> NotebookPage:
    return NotebookPage(page, notebook7_server)


def test_quickstart_in_notebook7(notebook7: NotebookPage, photo: Path) -> None:
    nb = notebook7.open_notebook7_from_tree("quickstart.ipynb")
    assert "/notebooks/notebooks/quickstart.ipynb" in nb.page.url
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    assert "synthetic" in root.locator(".fpw-badge").inner_text().lower()

    upload_start_image(nb, root, photo)
    generate_and_play(nb, root, "the camera zooms in slowly on the house", duration=10)
    assert_kernel_answered(root)
    root.screenshot(path=str(ARTIFACTS / "notebook7_widget_finished.png"))
    assert not nb.errors_in_outputs()
