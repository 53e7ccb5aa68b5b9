"""A class on a real JupyterHub, in Debian's Chromium: a student generates, a teacher sees it.

The session's hub (tests/conftest.py `hub`: JupyterHub from PyPI, configurable-http-proxy
from npm, the class service managed by it, the simulator as PiAPI) spawns a student's
JupyterLab with SimpleLocalProcessSpawner; the teacher's `c.Spawner.environment` gives it
FRAMEPACK_SERVICE_URL (the service through the hub's proxy) and the hub its token. The
student logs in, opens a notebook, presses Generate in the widget: the run goes through the
service, the header shows the class budget, and the run is shared with the class. The hub's
admin then opens the service's page (the hub's login, then OAuth) and sees the student's
spend and the shared run in the class gallery, its video playing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from fpw_browser import ARTIFACTS, UI_TIMEOUT_MS, NotebookPage, click_generate, make_photo, wait_player, wait_stage

STUDENT = "sofia"
TEACHER = "root-teacher"  # the hub's admin (its config): a teacher
PROMPT = "the camera zooms in slowly on the lake"


class HubUserServer:
    """What NotebookPage needs of a server: where a notebook opens in the student's JupyterLab."""

    def __init__(self, hub: Any, name: str) -> None:
        self.url = f"{hub.url}/user/{name}"
        self.root = hub.homes / name

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?reset"


def _home(hub: Any, name: str) -> Path:
    """The student's home with a photo, a notebook and JupyterLab's settings, before the spawn."""
    home = hub.homes / name
    settings = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    make_photo(home / "lake.jpg", size=(640, 480), seed=3)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from framepack_widgets import FramepackWidget\n"
        "w = FramepackWidget(start_image='lake.jpg')\n"
        "w")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, home / "class.ipynb")
    return home


def _log_in(page: Any, hub: Any, name: str, then: str) -> None:
    page.goto(f"{hub.url}/hub/login?next={then}", timeout=UI_TIMEOUT_MS)
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill("any password: the test hub's authenticator is dummy")
    page.locator("#login_submit").click()


def test_a_student_generates_through_the_class_service_and_the_teacher_sees_it(
        hub: Any, browser: Any, context: Any, page: Any) -> None:
    hub.add_users([STUDENT])
    _home(hub, STUDENT)
    hub.start_server(STUDENT)
    try:
        # ---- the student: JupyterLab spawned by the hub, the widget through the class service
        _log_in(page, hub, STUDENT, f"/user/{STUDENT}/lab")
        page.wait_for_url(f"**/user/{STUDENT}/lab**", timeout=UI_TIMEOUT_MS)
        nb = NotebookPage(page, HubUserServer(hub, STUDENT)).open_lab("class.ipynb")  # type: ignore[arg-type]
        nb.run_all()
        root = nb.widget()
        root.wait_for()
        budget = root.locator(".fpw-class")
        budget.filter(has_text="Class budget: $0.90 of $0.90 left").wait_for(timeout=UI_TIMEOUT_MS)
        badge = root.locator(".fpw-badge").inner_text()
        assert badge.startswith("Class service") and "synthetic" in badge, badge
        run_id = click_generate(nb, root, PROMPT)
        wait_stage(nb, root, run_id, ["completed"], idle=True)
        wait_player(nb, root, run_id, 10)
        budget.filter(has_text="Class budget: $0.60 of $0.90 left").wait_for(timeout=UI_TIMEOUT_MS)
        card = root.locator(f'.fpw-card[data-run-id="{run_id}"]')
        card.get_by_role("button", name="Share with class", exact=True).click()
        card.get_by_role("button", name="Shared with class", exact=True).wait_for(timeout=UI_TIMEOUT_MS)
        root.screenshot(path=str(ARTIFACTS / "classroom-student.png"))
        assert not nb.errors_in_outputs()

        # ---- the teacher: the service's page behind the hub's login
        teacher = browser.new_context(viewport={"width": 1280, "height": 1000})
        teacher.set_default_timeout(120_000)
        try:
            tpage = teacher.new_page()
            _log_in(tpage, hub, TEACHER, "/services/framepack/")
            tpage.wait_for_url("**/services/framepack/", timeout=UI_TIMEOUT_MS)
            main = tpage.locator("main#fpw-teacher[data-loaded=true]")
            main.wait_for(timeout=UI_TIMEOUT_MS)
            row = main.locator(".fpw-teacher-students tbody tr").filter(has_text=STUDENT)
            cells = row.locator("th, td").all_inner_texts()
            assert cells[:5] == [STUDENT, "$0.90 (class)", "$0.30", "$0.00", "$0.60"], cells
            gallery = main.locator(".fpw-gallery-card").filter(has_text=PROMPT)
            gallery.wait_for(timeout=UI_TIMEOUT_MS)
            assert STUDENT in gallery.inner_text()
            video = gallery.locator("video")
            assert "/services/framepack/videos/" in (video.get_attribute("src") or "")
            tpage.wait_for_function("v => { v.muted = true; v.play(); return v.readyState >= 2 && v.currentTime > 0.2; }",
                                    arg=video.element_handle(), timeout=UI_TIMEOUT_MS, polling=100)
            with tpage.expect_download(timeout=UI_TIMEOUT_MS) as download:
                main.get_by_role("button", name="Export gallery (zip)", exact=True).click()
            assert download.value.suggested_filename == "class-gallery.zip"
            tpage.screenshot(path=str(ARTIFACTS / "classroom-teacher.png"), full_page=True)

            # A student who opens the page is told it is the teachers'.
            other = browser.new_context()
            try:
                spage = other.new_page()
                _log_in(spage, hub, STUDENT, "/services/framepack/")
                spage.get_by_text("This page is for teachers").wait_for(timeout=UI_TIMEOUT_MS)
            finally:
                other.close()
        finally:
            teacher.close()
    finally:
        hub.stop_server(STUDENT)


@pytest.fixture(autouse=True)
def _hub_log_on_failure(request: pytest.FixtureRequest, hub: Any) -> Any:
    yield
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "classroom-hub.log").write_text(hub.log_tail(400))
