"""The teaching notebook presented with Voila (`voila notebooks/teaching_demo.ipynb`), in Chromium.

A teacher presents the lesson this way: Voila runs the notebook, hides the code and shows the
markdown and the outputs. Checked here: the lesson reads cleanly (no code, no error output,
prices as text rather than TeX), its widgets draw and say they run on the simulator, and in
exercise 1's widget an uploaded picture is generated from, the video plays, and two runs play
side by side in lock-step. Voila runs the notebook's own generation (part 2) before it serves
the page, so the simulator's clock is sped up (FRAMEPACK_SIM_TIME_SCALE) to keep that quick.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpw_browser import (
    ARTIFACTS,
    assert_in_lock_step,
    RUN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    AppServer,
    NotebookPage,
    assert_kernel_answered,
    click_generate,
    keep_offline,
    need_browser,
    play_comparison_and_measure,
    select_and_compare,
    upload_start_image,
    voila_server,
    wait_player,
    wait_stage,
)

LESSON = "teaching_demo.ipynb"
PROMPTS = ("the camera zooms in slowly on the red house",
           "the door of the red house opens and the flowers sway in the wind")
OUTPUT_ERRORS = '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    need_browser()
    pytest.importorskip("voila", reason="voila is in the test extra: pip install -e '.[test]'")
    scale = os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "20")
    server = voila_server(tmp_path_factory.mktemp("voila"), LESSON, env={"FRAMEPACK_SIM_TIME_SCALE": scale})
    try:
        yield server
    finally:
        server.stop()


def test_voila_presents_the_lesson_and_its_widget_works(context: object, page: object, voila: AppServer,
                                                         photo: Path) -> None:
    blocked = keep_offline(context)
    began = time.monotonic()
    page.goto(voila.url + "/", timeout=RUN_TIMEOUT_MS)  # type: ignore[attr-defined]
    roots = page.locator(".fpw-root")  # type: ignore[attr-defined]
    roots.first.wait_for(timeout=UI_TIMEOUT_MS)
    print(f"Voila ran the lesson and drew its first widget in {time.monotonic() - began:.1f} s")

    # The lesson, as the class sees it: text, pictures and widgets; no code, no errors.
    assert page.get_by_role("heading", name=re.compile("a 45-minute lesson")).is_visible()  # type: ignore[attr-defined]
    text = page.locator("body").inner_text()  # type: ignore[attr-defined]
    assert "def sample_scene" not in text and "studio = FramepackWidget" not in text, "Voila shows code"
    errors = page.locator(OUTPUT_ERRORS)  # type: ignore[attr-defined]
    assert errors.count() == 0, errors.all_inner_texts()
    assert page.locator("mjx-container, .MathJax").count() == 0, "prices rendered as TeX"  # type: ignore[attr-defined]
    assert "$1.80" in page.locator("table").first.inner_text()  # type: ignore[attr-defined]
    pictures = page.locator(".jp-OutputArea-output img")  # type: ignore[attr-defined]
    assert pictures.count() >= 2  # the sample picture and the contact sheet
    assert roots.count() == 4, roots.count()  # exercises 1 to 4
    for i in range(4):
        assert "synthetic" in roots.nth(i).locator(".fpw-badge").inner_text().lower()
    timeline = roots.nth(3).locator(".fpw-timeline")
    assert re.search(r"2 segments\W+20 s\W+\$0\.60", timeline.inner_text()), timeline.inner_text()

    # Exercise 1, as the teacher shows it: a picture of their own, two prompts, then Compare.
    root = roots.first
    nb = NotebookPage(page, None)  # type: ignore[arg-type]  # the flows only need its page
    assert "1024\u00d7768" in upload_start_image(nb, root, photo)
    runs = []
    for prompt in PROMPTS:
        run_id = click_generate(nb, root, prompt)
        wait_stage(nb, root, run_id, ["completed"], idle=False)
        state = nb.play_and_see_time_advance(wait_player(nb, root, run_id, 10), by=0.5)
        assert state["src"] == "blob:" and not state["paused"], state
        runs.append(run_id)
    assert_kernel_answered(root)
    section = select_and_compare(nb, root, runs)
    drift = play_comparison_and_measure(nb, section, settle_s=1.0, sample_ms=3000)
    print(f"Voila comparison drift over {drift['n']} frames: median {drift['median_ms']:.1f} ms, "
          f"p90 {drift['p90_ms']:.1f} ms, max {drift['max_ms']:.1f} ms")
    assert drift["n"] >= 20, drift
    assert_in_lock_step(drift)
    # Exercise 2 shows the same widget again: that view has the runs too.
    page.wait_for_function(  # type: ignore[attr-defined]
        "root => root.querySelectorAll('.fpw-card').length === 2", arg=roots.nth(1).element_handle(),
        timeout=UI_TIMEOUT_MS)

    # Nothing left 127.0.0.1 but Voila's own template links (Font Awesome from a CDN).
    print("requests kept offline:", blocked)
    assert all("fontawesome" in url for url in blocked), blocked
    print(f"Voila: the whole presentation took {time.monotonic() - began:.1f} s")
    page.screenshot(path=str(ARTIFACTS / "voila.png"))  # type: ignore[attr-defined]
