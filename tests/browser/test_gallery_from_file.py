"""The shared gallery opened from file:// in Debian's Chromium: no server, no kernel, no network.

Three real runs from the simulator are exported with `export_gallery`; the page is opened
straight from the disk. Each run's video plays; two selected runs play side by side in
lock-step (the drift sampled on every animation frame, as for the widget's comparison);
every request the page makes stays inside its folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fpw_browser import ARTIFACTS, FRAME_MS, SMALL_IMAGES, save_small_copy, small_copy_wanted, sync_drift_js
from framepack_widgets.gallery import export_gallery
from gallery_runs import make_runs


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    store, runs = make_runs(tmp_path_factory.mktemp("gallery") / "store", [
        {"prompt": "the camera zooms in slowly on the red house", "seed": 1},
        {"prompt": "the camera pans left across the hills at sunset", "seed": 2},
        {"prompt": "the camera zooms out, revealing the valley", "seed": 3, "negative_prompt": "blurry", "duration": 12},
    ])
    try:
        yield export_gallery(runs, tmp_path_factory.mktemp("shared") / "gallery")
    finally:
        store.close()


def test_gallery_from_file_plays_videos_and_two_in_lock_step(gallery: Path, page: object) -> None:
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: errors.append(str(e)))  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page.goto(gallery.as_uri())  # type: ignore[attr-defined]

    cards = page.locator(".fpw-gallery-card")  # type: ignore[attr-defined]
    cards.first.wait_for()
    assert cards.count() == 3
    # Each run's own video plays from the folder.
    for i in range(3):
        video = cards.nth(i).locator("video")
        handle = video.element_handle()
        page.wait_for_function("v => v.readyState >= 2", arg=handle, timeout=30_000)  # type: ignore[attr-defined]
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("v => !v.paused && v.currentTime > 0.3", arg=handle, timeout=30_000)  # type: ignore[attr-defined]
        video.evaluate("v => v.pause()")

    # Two of them side by side, with the prompt words that differ marked.
    cards.nth(0).get_by_role("checkbox").check()
    cards.nth(1).get_by_role("checkbox").check()
    page.get_by_role("button", name="Compare", exact=True).click()  # type: ignore[attr-defined]
    section = page.locator("section.fpw-compare")  # type: ignore[attr-defined]
    page.wait_for_function("s => s.dataset.ready === 'true'", arg=section.element_handle(), timeout=30_000)  # type: ignore[attr-defined]
    assert section.locator("ins.fpw-add").count() >= 1 and section.locator("del.fpw-del").count() >= 1
    section.get_by_role("button", name="Play", exact=True).click()
    videos = section.locator("video")
    a, b = videos.nth(0).element_handle(), videos.nth(1).element_handle()
    page.wait_for_function(  # type: ignore[attr-defined]
        "([a, b]) => !a.paused && !b.paused && a.currentTime > 1 && b.currentTime > 1", arg=[a, b], timeout=30_000
    )
    drifts = sorted(page.evaluate(sync_drift_js(), [a, b, 3000]))  # type: ignore[attr-defined]
    assert len(drifts) >= 20, drifts
    median, p90 = drifts[len(drifts) // 2], drifts[int(len(drifts) * 0.9)]
    print(f"gallery comparison drift over {len(drifts)} frames: median {median:.1f} ms, p90 {p90:.1f} ms, max {drifts[-1]:.1f} ms")
    assert median <= FRAME_MS and p90 <= 4 * FRAME_MS, drifts  # as assert_in_lock_step: loose, on purpose

    section.get_by_role("button", name="Pause", exact=True).click()
    shot = ARTIFACTS / "gallery.png"
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    if small_copy_wanted(SMALL_IMAGES / "gallery.png"):
        assert save_small_copy(shot, SMALL_IMAGES / "gallery.png").stat().st_size <= 60_000

    assert not errors, errors
    folder = gallery.parent.as_uri() + "/"
    outside = [u for u in requests if not u.startswith(folder)]
    assert not outside, f"the page asked for something outside its folder: {outside}"
