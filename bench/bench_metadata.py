"""Writing a run's settings into a 30 s MP4, next to copying the file.

Renders a 30 s video the way the offline simulator does (640 px, H.264), then measures, in
one run, interleaved:

- copying the file (`shutil.copyfile`): the floor of any rewrite;
- `framepack_widgets.video.write_settings` on a fresh copy: the settings JSON into the
  `comment` tag, all or nothing (a private copy beside the video gets the tag from mutagen,
  which moves no frame, then replaces the video);
- reading them back (`read_settings`);
- for reference, PyAV's opening of the file alone (what a remux through PyAV, the way this
  was written first, cannot avoid: it probes the streams).

It checks on the way that the packets are unchanged and that the tag reads back. Goal
(issue 16): writing within 3x the copy. Times are the median of 25.

Run: python bench/bench_metadata.py   (or bench/run.py metadata)
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

SECONDS = 30
REPEATS = 25
RATIO_GOAL = 3.0


def _render(folder: Path) -> Path:
    from framepack_widgets.simulator._render import placeholder_png, render_video

    return render_video(folder / "thirty.mp4", placeholder_png("bench"), None, motion="zoom_in",
                        duration=SECONDS).path


def _packets(path: Path) -> list[tuple]:
    import av

    with av.open(str(path)) as container:
        return [(p.pts, p.dts, bytes(p)) for p in container.demux() if p.dts is not None]


def results() -> list[dict]:
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))
    import av

    from framepack_widgets.video import read_settings, video_settings, write_settings

    settings = video_settings(prompt="the camera zooms in slowly on the red house, golden hour light",
                              negative_prompt="blurry, low quality", duration=SECONDS, run_id="0" * 32,
                              parent_id=None, task_id="1" * 36, simulated=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = _render(folder)
        copy, work = folder / "copy.mp4", folder / "work.mp4"
        copies, writes, reads, opens = [], [], [], []
        for _ in range(REPEATS):  # interleaved, so a busy moment weighs on both alike
            copy.unlink(missing_ok=True)
            started = time.perf_counter()
            shutil.copyfile(source, copy)
            copies.append(time.perf_counter() - started)
            shutil.copyfile(source, work)
            started = time.perf_counter()
            write_settings(work, settings)
            writes.append(time.perf_counter() - started)
            started = time.perf_counter()
            back = read_settings(work)
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            with av.open(str(source)):
                pass
            opens.append(time.perf_counter() - started)
        same = _packets(work) == _packets(source)
        size, grown = source.stat().st_size, work.stat().st_size - source.stat().st_size
    floor, took, read, opened = (statistics.median(x) for x in (copies, writes, reads, opens))
    ratio = took / floor
    return [
        {"bench": "metadata", "metric": f"copying a {SECONDS} s MP4 ({size / 1e6:.2f} MB): the floor",
         "figure": f"{floor * 1e3:.2f} ms", "goal": "", "met": None},
        {"bench": "metadata", "metric": f"writing the settings into it (tag only, no frame touched, {len(_text(settings))} characters)",
         "figure": f"{took * 1e3:.2f} ms = {ratio:.1f}x the copy", "goal": f"<= {RATIO_GOAL:.0f}x",
         "met": ratio <= RATIO_GOAL},
        {"bench": "metadata", "metric": "the video after: packets unchanged, settings read back",
         "figure": f"packets unchanged: {same}; read back: {back == settings}; file {grown:+d} bytes",
         "goal": "both", "met": same and back == settings},
        {"bench": "metadata", "metric": "for reference: PyAV's opening of the file alone (a PyAV remux cannot avoid it)",
         "figure": f"{opened * 1e3:.2f} ms = {opened / floor:.1f}x the copy", "goal": "", "met": None},
        {"bench": "metadata", "metric": "reading the settings back", "figure": f"{read * 1e3:.2f} ms",
         "goal": "", "met": None},
    ]


def _text(settings: dict) -> str:
    from framepack_widgets.video import settings_text

    return settings_text(settings)


if __name__ == "__main__":
    for row in results():
        print(row)
