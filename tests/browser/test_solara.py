"""notebooks/solara_app.py under `solara run`, driven in Debian's Chromium.

Solara is another host for the widget (its own widget manager, a Vuetify page around it, no
Jupyter server): a new user's app shows `FramepackWidget()` and the whole flow is checked here,
upload, Generate, play, then two runs compared in lock-step. Solara pins a "This website runs
on Solara" badge over the page's bottom-right corner; the comparison's last controls (speed,
Loop) sit there, so the test scrolls the page to its end and checks that none of them is
under the badge.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpw_browser import (
    ARTIFACTS,
    assert_in_lock_step,
    NOTEBOOKS,
    UI_TIMEOUT_MS,
    AppServer,
    NotebookPage,
    assert_kernel_answered,
    click_generate,
    keep_offline,
    need_browser,
    play_comparison_and_measure,
    select_and_compare,
    solara_server,
    upload_start_image,
    wait_player,
    wait_stage,
)

# Scrolls every scrolling box around the widget to its end, then gives the badge's box and the
# boxes of the comparison's controls (viewport coordinates), and what is drawn at each control's
# centre.
CONTROLS_AT_THE_END_JS = """section => {
  for (let n = section; n; n = n.parentElement) {
    if (n.scrollHeight > n.clientHeight + 1) n.scrollTop = n.scrollHeight;
  }
  const box = e => {
    const r = e.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
  };
  const link = [...document.querySelectorAll('a')]
    .find(a => /runs on/.test(a.parentElement.textContent) && /solara/i.test(a.textContent));
  const controls = [...section.querySelectorAll('.fpw-toolbar :is(button, select, input, label)')]
    .filter(e => e.offsetParent);
  return {
    badge: link ? box(link.parentElement) : null,
    controls: controls.map(e => {
      const b = box(e);
      const hit = document.elementFromPoint((b.left + b.right) / 2, (b.top + b.bottom) / 2);
      const name = e.getAttribute('aria-label') || e.textContent.trim() || e.tagName;
      return {name, ...b, reachable: e.contains(hit) || !!hit?.contains(e)};
    }),
  };
}"""


@pytest.fixture(scope="module")
def solara(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    need_browser()
    pytest.importorskip("solara", reason="solara is in the test extra: pip install -e '.[test]'")
    scale = os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "20")
    server = solara_server(tmp_path_factory.mktemp("solara"), NOTEBOOKS / "solara_app.py",
                           env={"FRAMEPACK_SIM_TIME_SCALE": scale})
    try:
        yield server
    finally:
        server.stop()


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def test_solara_generate_play_compare_clear_of_the_badge(context: object, page: object, solara: AppServer,
                                                         photo: Path) -> None:
    blocked = keep_offline(context)
    began = time.monotonic()
    page.goto(solara.url, timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    nb = NotebookPage(page, None)  # type: ignore[arg-type]  # the flows only need its page
    root = page.locator(".fpw-root").first  # type: ignore[attr-defined]
    root.wait_for(timeout=UI_TIMEOUT_MS)
    print(f"Solara drew the widget in {time.monotonic() - began:.1f} s")
    assert "synthetic" in root.locator(".fpw-badge").inner_text().lower()

    assert "1024\u00d7768" in upload_start_image(nb, root, photo)
    runs = []
    for prompt in ("the camera zooms in slowly on the house", "the camera pans left across the hills"):
        run_id = click_generate(nb, root, prompt)
        wait_stage(nb, root, run_id, ["completed"], idle=False)
        state = nb.play_and_see_time_advance(wait_player(nb, root, run_id, 10), by=0.5)
        assert state["src"] == "blob:" and not state["paused"], state
        runs.append(run_id)
    assert_kernel_answered(root)

    section = select_and_compare(nb, root, runs)
    drift = play_comparison_and_measure(nb, section, settle_s=1.0, sample_ms=3000)
    print(f"Solara comparison drift over {drift['n']} frames: median {drift['median_ms']:.1f} ms, "
          f"p90 {drift['p90_ms']:.1f} ms, max {drift['max_ms']:.1f} ms")
    assert drift["n"] >= 20, drift
    assert_in_lock_step(drift)

    # With the page scrolled to its end, every comparison control is clear of Solara's badge.
    seen = page.evaluate(CONTROLS_AT_THE_END_JS, section.element_handle())  # type: ignore[attr-defined]
    badge, controls = seen["badge"], seen["controls"]
    assert badge is not None, "no 'runs on Solara' badge found: did Solara change its page?"
    assert len(controls) >= 5, controls
    lowest = max(c["bottom"] for c in controls)
    print(f"Solara's badge: {badge}; the comparison's lowest control ends {badge['top'] - lowest:.0f} px above it")
    covered = [c["name"] for c in controls if overlap(c, badge) or not c["reachable"]]
    assert not covered, f"under Solara's badge: {covered}"

    assert not blocked, f"the page asked for files beyond 127.0.0.1: {blocked}"
    print(f"Solara: the whole flow took {time.monotonic() - began:.1f} s")
    page.screenshot(path=str(ARTIFACTS / "solara.png"))  # type: ignore[attr-defined]
