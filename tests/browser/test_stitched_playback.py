"""A video stitched by stream copy plays in Chromium as PyAV decodes it, joins included.

Two stitches of the same segments: one whose GOPs encoded again decode under the stream's
own SPS/PPS, one whose GOPs carry their own (other ids, in their first packet). Each is
served over loopback HTTP and played to its end at half speed; every frame Chromium shows
is drawn into a canvas and compared with PyAV's decoding of the frame at that time.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stitch_clips import chain, rgb_frames

from framepack_widgets.timeline import _copy, stitch
from framepack_widgets.video.h264 import prefixed_units, unit_type, x264_options_for_headers

PAGE = "<!doctype html><title>stitched</title><video muted playsinline></video><canvas></canvas>"

#: Plays the video at half speed; each frame shown is drawn into a canvas and kept as the
#: mean of each 8x8 block (RGB), with the time it is shown at. Then where it ended, and how.
PLAY_JS = """async (src) => {
  const v = document.querySelector('video'), c = document.querySelector('canvas');
  v.src = src;
  await new Promise((ok, bad) => { v.onloadeddata = ok; v.onerror = () => bad(new Error('video error ' + v.error.code)); });
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', {willReadFrequently: true});
  const shown = [];
  const keep = (now, meta) => {
    g.drawImage(v, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data, blocks = [];
    for (let by = 0; by < c.height; by += 8) for (let bx = 0; bx < c.width; bx += 8) for (let ch = 0; ch < 3; ch++) {
      let sum = 0;
      for (let y = by; y < by + 8; y++) for (let x = bx; x < bx + 8; x++) sum += px[(y * c.width + x) * 4 + ch];
      blocks.push(sum / 64);
    }
    shown.push({time: meta.mediaTime, blocks});
    if (!v.ended) v.requestVideoFrameCallback(keep);
  };
  v.requestVideoFrameCallback(keep);
  v.playbackRate = 0.5;
  await v.play();
  await new Promise((ok, bad) => { v.onended = ok; v.onerror = () => bad(new Error('video error ' + v.error.code)); });
  const q = v.getVideoPlaybackQuality();
  return {shown, ended: v.ended, error: v.error, at: v.currentTime, duration: v.duration,
          corrupted: q.corruptedVideoFrames, decoded: q.totalVideoFrames};
}"""


def _blocks(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return frame.reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3)).reshape(-1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("stitched")
    (folder / "index.html").write_text(PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()


def _stitched(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch, *, own_headers: bool) -> Path:
    if own_headers:  # x264 set up so that its PPS differs: the GOPs must bring their own
        monkeypatch.setattr(_copy, "x264_options_for_headers", lambda s: {**x264_options_for_headers(s), "crf": "30"})
    clips = chain(folder, [40, 45, 30], gop=10, prefix=name)
    result = stitch(clips, folder / f"{name}.mp4")
    monkeypatch.undo()
    assert result.copied and result.frames == 113 and result.encoded_frames == 13
    return result.path


@pytest.mark.parametrize("own_headers", [False, True], ids=["stream-headers", "own-headers"])
def test_a_stitched_video_plays_in_chromium_as_pyav_decodes_it(
    browser: Any, served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, own_headers: bool
) -> None:
    base, folder = served
    name = "own" if own_headers else "stream"
    path = _stitched(folder, name, monkeypatch, own_headers=own_headers)
    with open(path, "rb") as f:  # which kind of join this is, read from the file itself
        import av

        with av.open(f) as container:
            first_new = [bytes(p) for p in container.demux(video=0) if p.dts is not None][40]
    assert (7 in [unit_type(u) for u in prefixed_units(first_new, 4)]) is own_headers

    want = [_blocks(f.astype(np.float64)) for f in rgb_frames(path)]
    page = browser.new_page()
    try:
        page.goto(base + "index.html")
        played = page.evaluate(PLAY_JS, base + path.name)
        assert played["ended"] and played["error"] is None and played["corrupted"] == 0, {
            k: v for k, v in played.items() if k != "shown"}
        assert played["duration"] == pytest.approx(113 / 30, abs=0.01)
        assert played["at"] == pytest.approx(played["duration"], abs=0.05)
        seen = set()
        for frame in played["shown"]:
            index = min(112, int(frame["time"] * 30 + 0.5))
            # On a busy machine the element may already show the next frame when the callback
            # draws it: a frame counts as PyAV's when it matches its own time's or a neighbour's
            # (a frame decoded wrong matches none of them).
            errors = {i: float(np.abs(np.asarray(frame["blocks"]) - want[i]).mean())
                      for i in (index - 1, index, index + 1) if 0 <= i <= 112}
            best = min(errors, key=errors.__getitem__)
            assert errors[best] < 3.0, f"frame {index} differs from PyAV's ({errors[index]:.1f} levels on average)"
            seen.add(best)
        # Frames of both GOPs encoded again (40-48, 79-82) and of copied GOPs on either side were seen.
        for part in (range(30, 40), range(40, 49), range(49, 79), range(79, 83), range(83, 113)):
            assert seen & set(part), (sorted(seen), part)
    finally:
        page.close()
