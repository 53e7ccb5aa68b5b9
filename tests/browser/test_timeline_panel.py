"""Extend and the Timeline panel in a real JupyterLab, driven in Debian's Chromium.

Extend: a finished run's Extend button makes its last frame the start image (compared here
pixel by pixel with the player's own last frame), and the next run is part 2 of its chain.
Timeline: two segments built in the panel, Start timeline, each segment's status, and the
stitched video playing inline. The quickstart notebook, the embedded simulator at the
browser tests' speed-up (FRAMEPACK_SIM_TIME_SCALE).
"""

from __future__ import annotations

from typing import Any

from fpw_browser import (
    ARTIFACTS,
    RUN_TIMEOUT_MS,
    SMALL_IMAGES,
    UI_TIMEOUT_MS,
    NotebookPage,
    click_generate,
    generate_and_play,
    save_small_copy,
    small_copy_wanted,
    wait_stage,
)

# Pixels of a <video> frame at time t, or of an <img>, drawn small on a canvas (blob URLs are same-origin).
FRAME_AT_JS = """async ([v, t]) => {
  v.pause();
  if (Math.abs(v.currentTime - t) > 0.001) {
    const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
    v.currentTime = t;
    await seeked;
  }
  const c = document.createElement('canvas'); c.width = 32; c.height = 24;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 32, 24);
  return [...g.getImageData(0, 0, 32, 24).data];
}"""
IMAGE_PIXELS_JS = """async (img) => {
  await img.decode();
  const c = document.createElement('canvas'); c.width = 32; c.height = 24;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 32, 24);
  return [...g.getImageData(0, 0, 32, 24).data];
}"""


def mean_diff(a: list[int], b: list[int]) -> float:
    pairs = [(x, y) for i, (x, y) in enumerate(zip(a, b)) if i % 4 != 3]  # RGB, not alpha
    return sum(abs(x - y) for x, y in pairs) / len(pairs)


def test_extend_makes_the_last_frame_the_start_image(lab: NotebookPage) -> None:
    nb = lab.open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    prompt = "the camera zooms in slowly on the red house"
    first = generate_and_play(nb, root, prompt, 10)
    video = root.locator("video.fpw-video")
    duration = video.evaluate("v => v.duration")
    last = nb.page.evaluate(FRAME_AT_JS, [video.element_handle(), duration - 0.01])
    start = nb.page.evaluate(FRAME_AT_JS, [video.element_handle(), 0])

    thumb = root.locator(".fpw-slot-start img.fpw-thumb")
    before = thumb.get_attribute("src")
    number = root.locator(f'.fpw-card[data-run-id="{first}"] .fpw-card-meta').inner_text().split(" \u00b7 ")[0]
    assert number.startswith("#"), number  # runs are called by their number in the store
    extend = root.locator(".fpw-output").get_by_role("button", name="Extend", exact=True)
    extend.click()
    meta = root.locator(".fpw-slot-start .fpw-slot-meta")
    nb.page.wait_for_function(
        "([m, img, name, old]) => m.textContent.includes(name) && img.getAttribute('src') && img.getAttribute('src') !== old",
        arg=[meta.element_handle(), thumb.element_handle(), f"last frame of run {number}", before],
        timeout=UI_TIMEOUT_MS, polling=100,
    )
    shown = thumb.evaluate(IMAGE_PIXELS_JS)
    to_last, to_start = mean_diff(shown, last), mean_diff(shown, start)
    print(f"start image vs the video's last frame: {to_last:.1f}, vs its first frame: {to_start:.1f} (mean |diff|, 0-255)")
    assert to_last < 8 and to_last * 2 < to_start, (to_last, to_start)
    field = root.get_by_label("Prompt", exact=True)
    assert field.input_value() == prompt, "the prompt is kept for editing"
    assert nb.page.evaluate("p => document.activeElement === p", field.element_handle())

    second = click_generate(nb, root, "the camera pans left across the hills")
    wait_stage(nb, root, second, ["completed"], idle=True)
    chain = root.locator(f'.fpw-card[data-run-id="{second}"] .fpw-card-chain')
    chain.wait_for(timeout=UI_TIMEOUT_MS)
    assert chain.inner_text() == "part 2 of 2"
    assert root.locator(f'.fpw-card[data-run-id="{first}"] .fpw-card-chain').inner_text() == "part 1 of 2"
    assert not nb.errors_in_outputs()


def _segment(panel: Any, n: int, prompt: str) -> None:
    panel.get_by_label(f"Segment {n} prompt", exact=True).fill(prompt)


def test_a_two_segment_timeline_built_in_the_panel_plays_as_one_video(lab: NotebookPage) -> None:
    nb = lab.open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    panel = root.locator("details.fpw-timeline")
    panel.locator("summary").click()
    _segment(panel, 1, "the camera zooms in slowly on the red house")
    panel.get_by_role("button", name="Add segment", exact=True).click()
    _segment(panel, 2, "the camera pans left across the hills")
    assert panel.locator(".fpw-tl-total").inner_text() == "2 segments \u00b7 20 s \u00b7 $0.60 (simulated, nothing charged)"
    start = panel.get_by_role("button", name="Start timeline", exact=True)
    nb.page.wait_for_function("b => !b.disabled", arg=start.element_handle(), timeout=UI_TIMEOUT_MS)
    start.click()

    nb.page.wait_for_function("p => p.dataset.status === 'running'", arg=panel.element_handle(), timeout=UI_TIMEOUT_MS)
    statuses: set[str] = set()
    handle = panel.element_handle()
    for _ in range(RUN_TIMEOUT_MS // 250):  # what each segment showed on the way (a bound, not a timing)
        if panel.get_attribute("data-status") not in ("running", "stitching"):
            break
        statuses.update(panel.locator(".fpw-seg-status").all_inner_texts())
        nb.page.wait_for_timeout(250)
    assert panel.get_attribute("data-status") == "done", panel.locator("[role=status]").all_inner_texts()
    assert any(s.startswith("Waiting") for s in statuses) and "Done" in statuses, statuses
    assert panel.locator(".fpw-seg-status").all_inner_texts() == ["Done", "Done"]

    video = panel.get_by_label("Timeline video", exact=True)
    nb.page.wait_for_function(
        "v => !v.hidden && v.readyState >= 2 && Math.abs(v.duration - (2 * 10 * 30 - 1) / 30) <= 0.1",
        arg=video.element_handle(), timeout=RUN_TIMEOUT_MS, polling=100,
    )
    state = nb.play_and_see_time_advance(video, by=0.5)
    assert not state["paused"] and state["src"] == "blob:", state
    # The README's picture: a narrower page, no JupyterLab toast over it, paused in segment 2.
    nb.page.add_style_tag(content=".Toastify, .jp-toast-container { display: none !important; }")
    nb.page.set_viewport_size({"width": 900, "height": 1000})
    video.evaluate("v => { v.pause(); v.currentTime = 12; }")
    nb.page.wait_for_function("v => !v.seeking && v.readyState >= 2", arg=video.element_handle())
    shot = ARTIFACTS / "timeline.png"
    handle.screenshot(path=str(shot))
    if small_copy_wanted(SMALL_IMAGES / "timeline.png"):
        small = save_small_copy(shot, SMALL_IMAGES / "timeline.png")
        assert small.stat().st_size <= 60_000
    assert not nb.errors_in_outputs()
