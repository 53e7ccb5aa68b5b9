"""The quickstart in JupyterLab, driven in Debian's Chromium: upload, generate, play, compare.

What a newcomer does with the README's demo, checked end to end: the JupyterLab server is
started by the test (offline, embedded simulator), cells are run from the Run menu, the
image goes in through the Start image file input, the status streams while the kernel
is idle, the finished video plays inline, and two runs play in step side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from framepack_widgets.widget._snapshot import POSTER_BYTES
from fpw_browser import (
    ARTIFACTS,
    assert_in_lock_step,
    LONG_BASE64,
    MAGIC_BASE64,
    NOTEBOOKS,
    SIM_KEY,
    SMALL_IMAGES,
    NotebookPage,
    assert_kernel_answered,
    generate_and_play,
    play_comparison_and_measure,
    save_and_read_notebook,
    save_small_copy,
    select_and_compare,
    small_copy_wanted,
    upload_start_image,
)
from saved_notebook import posters_taken_out


def test_quickstart_upload_generate_play_compare(lab: NotebookPage, photo: Path, photo2: Path) -> None:
    nb = lab.open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    badge = root.locator(".fpw-badge")
    assert "synthetic" in badge.inner_text().lower(), badge.inner_text()
    # The accessible names DESIGN.md promises (tests and assistive technology rely on them).
    for slot in ("Start image", "End image"):
        assert root.get_by_label(slot, exact=True).get_attribute("type") == "file", slot
    for label in ("Prompt", "Negative prompt", "Duration"):
        assert root.get_by_label(label, exact=True).count() == 1, label
    for name in ("Generate", "Cancel"):
        assert root.get_by_role("button", name=name, exact=True).count() == 1, name

    # The quickstart preloads its own sample image; replace it through the file input.
    meta = upload_start_image(nb, root, photo)
    assert "1024\u00d7768" in meta, meta
    duration = int(root.get_by_label("Duration", exact=True).input_value())
    assert duration == 10

    first = generate_and_play(nb, root, "the camera zooms in slowly on the house", duration)
    assert_kernel_answered(root)
    video = root.locator("video.fpw-video")
    video.evaluate("v => { v.pause(); v.currentTime = 6; }")
    nb.page.wait_for_function("v => !v.seeking && v.readyState >= 2", arg=video.element_handle())
    shot = ARTIFACTS / "widget_finished.png"
    root.screenshot(path=str(shot))
    if small_copy_wanted(SMALL_IMAGES / "widget_finished.png"):
        small = save_small_copy(shot, SMALL_IMAGES / "widget_finished.png")
        assert small.stat().st_size <= 60_000

    # A second run from a second image and prompt, then both side by side.
    upload_start_image(nb, root, photo2)
    second = generate_and_play(nb, root, "the camera pans left across the hills", duration)
    assert second != first
    assert root.get_by_role("button", name="Compare", exact=True).count() == 1
    section = select_and_compare(nb, root, [first, second])
    assert section.locator("video").count() == 2
    assert "prompt" in section.locator(".fpw-diff-summary").inner_text()
    drift = play_comparison_and_measure(nb, section, settle_s=1.0, sample_ms=3000)
    print(f"comparison drift over {drift['n']} frames: median {drift['median_ms']:.1f} ms, "
          f"p90 {drift['p90_ms']:.1f} ms, max {drift['max_ms']:.1f} ms")
    assert_in_lock_step(drift)

    section.get_by_role("button", name="Pause", exact=True).click()
    shot = ARTIFACTS / "comparison.png"
    section.screenshot(path=str(shot))
    if small_copy_wanted(SMALL_IMAGES / "comparison.png"):
        small = save_small_copy(shot, SMALL_IMAGES / "comparison.png")
        assert small.stat().st_size <= 60_000
    nb.page.screenshot(path=str(ARTIFACTS / "jupyterlab-quickstart.png"), full_page=True)
    assert not nb.errors_in_outputs()

    # The snapshot beside the live widget stays out of sight while the widget is drawn.
    assert nb.page.locator(".fpw-snapshot").count() >= 1
    assert_kernel_answered(root)

    # Saved with JupyterLab's "save widget state" on: small, and no video bytes or key in it;
    # the snapshot (kept in step by the kernel) tells of the second run, with its poster.
    saved = save_and_read_notebook(nb, "quickstart.ipynb")
    pages = [out["data"]["text/html"] for cell in nbformat.reads(saved, as_version=4).cells for out in cell.get("outputs", [])
             if "fpw-snapshot" in out.get("data", {}).get("text/html", "")]
    assert pages and all("pans left across the hills" in p and "completed" in p for p in pages), pages
    text, posters = posters_taken_out(saved)
    assert len(posters) == len(pages) and all(len(p) <= POSTER_BYTES for p in posters)
    grown = len(saved.encode()) - (NOTEBOOKS / "quickstart.ipynb").stat().st_size
    print(f"quickstart saved from JupyterLab with widget state, two runs: +{grown / 1024:.1f} KB")
    assert grown <= 100 * 1024, f"the saved notebook grew by {grown / 1024:.1f} KB"
    state = json.loads(saved)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(len(m.get("state", {}).get("_history", [])) == 2 for m in state.values()), "no widget with two runs saved"
    for magic in MAGIC_BASE64:
        assert magic not in text, f"{magic!r} (image/video bytes besides the poster) in the saved notebook"
    assert not LONG_BASE64.search(text), "a long base64 run (bytes) in the saved notebook"
    assert not SIM_KEY.search(text), "the simulator's API key is in the saved notebook"

    # Reopened later, the kernel that drew it gone: the widget is drawn from the saved state,
    # gets no answer, and gives way to the snapshot of the second run, poster and all.
    for session in nb.server.api("GET", "/api/sessions"):
        nb.server.api("DELETE", f"/api/sessions/{session['id']}")
    nb.open_lab("quickstart.ipynb")
    root = nb.widget()
    root.locator(":scope > .fpw-notice").filter(has_text="No answer from the kernel").wait_for()
    box = nb.page.locator(".fpw-snapshot").last
    box.wait_for()
    assert "pans left across the hills" in box.inner_text() and "completed" in box.inner_text()
    poster = box.locator("img[alt='Poster of the last run']")
    nb.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=poster.element_handle())
    assert not root.locator(".fpw-main").is_visible()
