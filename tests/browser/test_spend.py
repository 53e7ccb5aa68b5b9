"""Spend, a second notebook and Share, in JupyterLab (issue 16).

- The day's budget: with FRAMEPACK_BUDGET=0.50 a second 10 s run ($0.30) is refused before it
  is sent: the inputs' error line says what is left and what was asked, the header shows the
  session's and today's spend, and the stand-in PiAPI (a simulator in this process, as in
  test_restart.py) saw exactly one create request.
- A fresh widget in a second notebook of the same folder opens "Ready": no video, its own
  (empty) history, and the quickstart's run one click away under "All runs".
- Share says beside its button that it is exporting, then which file it saved (no folder) as
  the browser downloads it; the notice at the widget's top stays quiet.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import nbformat
import pytest

from fpw_browser import (
    ARTIFACTS,
    UI_TIMEOUT_MS,
    JupyterServer,
    NotebookPage,
    click_generate,
    fast_simulator_env,
    need_browser,
    start_server,
    wait_stage,
)

BUDGET_LINE = "Today's budget: $0.20 of $0.50 left; this run costs $0.30."


@pytest.fixture(scope="module")
def piapi() -> Iterator[object]:
    """The hosted API's stand-in: it outlives kernels and counts the create requests."""
    from framepack_widgets.simulator import Simulator

    sim = Simulator(api_key="sim-budget-" + secrets.token_hex(8), pending_seconds=0.5, processing_seconds=2.0).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory: pytest.TempPathFactory, piapi: object) -> Iterator[JupyterServer]:
    need_browser()
    env = {"PIAPI_API_KEY": piapi.api_key, "PIAPI_BASE_URL": piapi.base_url,  # type: ignore[attr-defined]
           "FRAMEPACK_BUDGET": "0.50"}
    server = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="spend-budget", env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def folder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    need_browser()
    server = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="spend-notebooks", env=fast_simulator_env())
    try:
        yield server
    finally:
        server.stop()


def creates(sim: object) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "create")  # type: ignore[attr-defined]


def wait_text(nb: NotebookPage, locator: object, pattern: str) -> str:
    """Wait until `locator`'s text matches the regular expression `pattern`; returns the text."""
    nb.page.wait_for_function("([e, p]) => new RegExp(p).test(e.textContent)",
                              arg=[locator.element_handle(), pattern], timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    return locator.text_content()  # type: ignore[attr-defined]


def test_a_run_past_the_days_budget_is_refused_before_it_is_sent(page: object, budget_server: JupyterServer,
                                                                 piapi: object) -> None:
    nb = NotebookPage(page, budget_server).open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    spend = root.locator(".fpw-head .fpw-session")
    assert wait_text(nb, spend, r"Today \$0\.00 of \$0\.50").startswith("Session $0.00 · Today $0.00 of $0.50")
    run_id = click_generate(nb, root, "the camera zooms in slowly on the red house")
    wait_stage(nb, root, run_id, ["completed"], idle=True)
    assert wait_text(nb, spend, r"Today \$0\.30").startswith("Session $0.30 · Today $0.30 of $0.50")
    assert creates(piapi) == 1

    root.get_by_label("Prompt", exact=True).fill("the camera pans left across the hills")
    generate = root.get_by_role("button", name="Generate", exact=True)
    nb.page.wait_for_function("b => !b.disabled", arg=generate.element_handle(), timeout=UI_TIMEOUT_MS)
    generate.click()
    error = root.locator(".fpw-input-error")
    assert wait_text(nb, error, re.escape(BUDGET_LINE)).startswith(BUDGET_LINE)
    nb.page.wait_for_function("b => !b.disabled", arg=generate.element_handle(), timeout=UI_TIMEOUT_MS)
    assert root.locator(".fpw-status").get_attribute("data-run-id") == run_id, "no new run"
    assert creates(piapi) == 1, "the refused run reached the API"
    assert spend.text_content().startswith("Session $0.30 · Today $0.30 of $0.50")
    root.screenshot(path=str(ARTIFACTS / "budget_refused.png"))


def test_a_fresh_widget_in_a_second_notebook_opens_ready_and_share_says_what_it_saved(
        page: object, folder_server: JupyterServer) -> None:
    nb = NotebookPage(page, folder_server).open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    first = click_generate(nb, root, "the camera zooms in slowly on the red house")
    wait_stage(nb, root, first, ["completed"], idle=True)

    # A second notebook in the same folder (so the same run store), opened fresh.
    second = nbformat.v4.new_notebook()
    second.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    second.cells.append(nbformat.v4.new_code_cell("from framepack_widgets import FramepackWidget\n"
                                                  "w = FramepackWidget()\nw"))
    nbformat.write(second, folder_server.root / "notebooks" / "second.ipynb")
    nb.open_lab("second.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    status = root.locator(".fpw-status")
    history = root.locator("section.fpw-history")
    history.wait_for()
    assert status.get_attribute("data-stage") == "idle" and status.locator(".fpw-stage").text_content() == "Ready"
    assert not status.get_attribute("data-run-id")
    assert not root.locator("video.fpw-video").is_visible(), "another notebook's video is shown"
    assert history.locator(".fpw-h").text_content() == "History (0 runs)"
    assert history.locator(".fpw-card").count() == 0
    mine = history.get_by_role("button", name="This notebook (0)", exact=True)
    assert mine.get_attribute("aria-pressed") == "true"

    history.get_by_role("button", name="All runs (1)", exact=True).click()
    card = history.locator(f'.fpw-card[data-run-id="{first}"]')
    card.wait_for(timeout=UI_TIMEOUT_MS)
    assert "from quickstart.ipynb" in card.locator(".fpw-card-meta").text_content()  # the kernel knew its notebook
    assert history.locator(".fpw-h").text_content() == "History (1 run)"
    assert mine.get_attribute("aria-pressed") == "false"
    assert status.get_attribute("data-stage") == "idle", "showing all runs takes none of them as current"

    # Share: its feedback beside the button, the file by name as it downloads.
    share = root.get_by_role("button", name="Share", exact=True)
    note = root.locator(".fpw-share-row .fpw-export-note")
    with nb.page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        share.click()
        assert wait_text(nb, note, "^(Exporting…|Saved )")
        text = wait_text(nb, note, r"^Saved gallery-\d{8}-\d{6}\.zip · downloading$")
    assert download.value.suggested_filename == text.split()[1]
    root.screenshot(path=str(ARTIFACTS / "second_notebook_all_runs.png"))
    assert root.locator(":scope > .fpw-notice").text_content() == "", "the top notice stays quiet"
    assert str(folder_server.root) not in root.text_content()
