"""The inputs a newcomer asked for, in a real JupyterLab driven in Debian's Chromium (issue 16):
several images dropped at once plan an image sweep; Loop makes a video end on its start
image; an MP4 made by the package, dropped on the widget, gives its settings back.

The quickstart notebook, the embedded simulator at the browser tests' speed-up
(FRAMEPACK_SIM_TIME_SCALE, see conftest); each test opens the notebook afresh.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from fpw_browser import (
    RUN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    NotebookPage,
    click_generate,
    make_photo,
    wait_player,
    wait_stage,
)

# Files made in the page from bytes and dropped on `target` as one DataTransfer, as a
# person dragging them from a file manager would.
DROP_JS = """([target, files]) => {
  const dt = new DataTransfer();
  for (const [name, type, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], name, { type }));
  }
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    target.dispatchEvent(new DragEvent(kind, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
}"""
# A video frame at time t drawn small on a canvas (blob URLs are same-origin).
FRAME_AT_JS = """async ([v, t]) => {
  v.pause();
  if (Math.abs(v.currentTime - t) > 0.001) {
    const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
    v.currentTime = t;
    await seeked;
  }
  const c = document.createElement('canvas'); c.width = 64; c.height = 48;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 48);
  return [...g.getImageData(0, 0, 64, 48).data];
}"""


def drop(nb: NotebookPage, target: Any, files: list[tuple[str, str, bytes]]) -> None:
    payload = [[name, kind, base64.b64encode(data).decode("ascii")] for name, kind, data in files]
    nb.page.evaluate(DROP_JS, [target.element_handle(), payload])


def open_quickstart(lab: NotebookPage) -> tuple[NotebookPage, Any]:
    nb = lab.open_lab("quickstart.ipynb")
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    return nb, root


def mean_diff(a: list[int], b: list[int]) -> float:
    pairs = [(x, y) for i, (x, y) in enumerate(zip(a, b)) if i % 4 != 3]  # RGB, not alpha
    return sum(abs(x - y) for x, y in pairs) / len(pairs)


def test_several_images_dropped_on_the_start_slot_plan_an_image_sweep(lab: NotebookPage) -> None:
    nb, root = open_quickstart(lab)
    root.get_by_label("Prompt", exact=True).fill("the camera pans slowly across the valley")
    images = [("lake.jpg", "image/jpeg", make_photo(size=(480, 360), seed=3)),
              ("beach.jpg", "image/jpeg", make_photo(size=(480, 360), seed=4))]
    drop(nb, root.locator(".fpw-slot-start .fpw-drop"), images)

    sweep = root.get_by_role("region", name="Sweep")
    sweep.wait_for(timeout=UI_TIMEOUT_MS)
    text = sweep.locator(".fpw-sweep-text")
    nb.page.wait_for_function("t => t.textContent.includes('start images: lake.jpg, beach.jpg')",
                              arg=text.element_handle(), timeout=UI_TIMEOUT_MS)
    said = text.inner_text()
    assert said.startswith("Sweep: 2 runs \u00d7 $0.30 = $0.60") and "Nothing starts until you press Start sweep" in said, said
    assert root.locator(".fpw-card").count() == 0, "nothing was sent before Start sweep"

    sweep.get_by_role("button", name="Start sweep", exact=True).click()
    section = root.locator("section.fpw-compare")
    nb.page.wait_for_function(
        "s => !s.hidden && s.querySelectorAll('.fpw-cell').length === 2", arg=section.element_handle(),
        timeout=RUN_TIMEOUT_MS, polling=200,
    )
    facts = section.locator(".fpw-fact.fpw-changed").all_inner_texts()
    assert "Start image lake.jpg" in facts and "Start image beach.jpg" in facts, facts
    labels = section.locator(".fpw-label").all_inner_texts()
    assert labels == ["#1", "#2"], labels
    metas = root.locator(".fpw-card-meta").all_inner_texts()
    assert sorted(m.split(" \u00b7 ")[0] for m in metas) == ["#1", "#2"], metas
    assert not nb.errors_in_outputs()


def test_loop_ends_the_video_on_its_start_image(lab: NotebookPage) -> None:
    nb, root = open_quickstart(lab)
    switch = root.get_by_role("switch", name="Loop", exact=True)
    assert switch.count() == 1 and not switch.is_checked()
    switch.check()
    end_meta = root.locator(".fpw-slot-end .fpw-slot-meta")
    nb.page.wait_for_function("m => m.textContent === 'Loop: the start image'", arg=end_meta.element_handle(),
                              timeout=UI_TIMEOUT_MS)
    run_id = click_generate(nb, root, "the camera pans left across the hills and back")
    wait_stage(nb, root, run_id, ["completed"], idle=True)
    card = root.locator(f'.fpw-card[data-run-id="{run_id}"] .fpw-card-meta')
    card.wait_for(timeout=UI_TIMEOUT_MS)
    assert " \u00b7 Loop \u00b7 " in card.inner_text(), card.inner_text()
    video = wait_player(nb, root, run_id, 10)
    duration = video.evaluate("v => v.duration")
    first = nb.page.evaluate(FRAME_AT_JS, [video.element_handle(), 0])
    middle = nb.page.evaluate(FRAME_AT_JS, [video.element_handle(), duration / 2])
    last = nb.page.evaluate(FRAME_AT_JS, [video.element_handle(), duration - 0.01])
    back, moved = mean_diff(first, last), mean_diff(first, middle)
    print(f"loop: last frame vs first {back:.1f}, middle vs first {moved:.1f} (mean |diff|, 0-255)")
    assert back < 8 and back * 2 < moved, (back, moved)
    assert not nb.errors_in_outputs()


def test_an_mp4_dropped_on_the_widget_gives_its_settings_back(lab: NotebookPage, tmp_path: Path) -> None:
    nb, root = open_quickstart(lab)
    video = settings_video(tmp_path / "wave.mp4")
    prompt = root.get_by_label("Prompt", exact=True)
    before = prompt.input_value()
    # Not a video: said, nothing changed.
    drop(nb, root.locator(".fpw-prompt"), [("notes.mp4", "video/mp4", b"\x00\x00\x00\x18ftypisom" + b"x" * 200)])
    error = root.locator(".fpw-input-error")
    nb.page.wait_for_function("e => e.textContent.includes('notes.mp4 is not a video')", arg=error.element_handle(),
                              timeout=UI_TIMEOUT_MS)
    assert prompt.input_value() == before

    drop(nb, root.locator(".fpw-prompt"), [("wave.mp4", "video/mp4", video.read_bytes())])  # anywhere on the widget
    notice = root.locator(":scope > .fpw-notice")
    nb.page.wait_for_function(
        "n => n.textContent === 'Settings restored from wave.mp4; the start image is its first frame; Loop is on.'",
        arg=notice.element_handle(), timeout=UI_TIMEOUT_MS,
    )
    nb.page.wait_for_function("p => p.value === 'waves roll onto the beach'", arg=prompt.element_handle(),
                              timeout=UI_TIMEOUT_MS)
    assert root.get_by_label("Negative prompt", exact=True).input_value() == "blurry"
    assert root.get_by_label("Duration", exact=True).input_value() == "12"
    assert root.get_by_role("switch", name="Loop", exact=True).is_checked()
    meta = root.locator(".fpw-slot-start .fpw-slot-meta")
    nb.page.wait_for_function("m => m.textContent.startsWith('first frame of wave.mp4')", arg=meta.element_handle(),
                              timeout=UI_TIMEOUT_MS)
    # The slot says where its image came from, and puts the one before back.
    back = root.locator(".fpw-slot-start").get_by_role("button", name="back to PIL image", exact=True)
    back.click()
    nb.page.wait_for_function("m => m.textContent.startsWith('PIL image')", arg=meta.element_handle(),
                              timeout=UI_TIMEOUT_MS)
    assert back.is_hidden()
    assert not nb.errors_in_outputs()


def settings_video(path: Path) -> Path:
    """An MP4 made by the package in the test: frames encoded with PyAV, then the settings of
    a run (from another machine's store) written into its comment tag by `write_settings`."""
    import av

    from framepack_widgets.video import read_settings, video_settings, write_settings

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(10):
            frame = np.zeros((240, 320, 3), np.uint8)
            frame[:, :, 2] = 200
            frame[80:160, 40 + 10 * i:140 + 10 * i] = (250, 220, 40)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    same = {"sha256": "0" * 64}
    write_settings(path, video_settings(prompt="waves roll onto the beach", negative_prompt="blurry", duration=12,
                                        run_id="a-run-of-another-store", start_image=same, end_image=same))
    assert read_settings(path)["prompt"] == "waves roll onto the beach"
    return path
