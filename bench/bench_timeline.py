"""Stitching a timeline: how long, next to the floor of any re-encode, and at what quality?

Renders four chained 20 s segments (80 s in all) the way the offline simulator does (640 px,
H.264, each segment starting on the previous one's last frame), then measures, in one run:

- the floor: decoding the same four files once (as the stitcher's decoder does);
- stitching them into one MP4 (`framepack_widgets.timeline.stitch`);
- the frames at the joins (sum of the segments' frames minus one per join);
- quality: the PSNR of every stitched frame against the segment frame it came from.

Goals (issue 11): stitching within 4x the decode floor, and quality kept (mean PSNR at least
40 dB, no frame below 35 dB). Times are the median of three.

Run: python bench/bench_timeline.py   (or bench/run.py timeline)
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

SEGMENTS = [("the camera zooms in", "zoom_in"), ("the camera pans left", "pan_left"),
            ("the camera tilts up", "tilt_up"), ("the camera zooms out", "zoom_out")]
SECONDS = 20
REPEATS = 3
RATIO_GOAL = 4.0
MEAN_PSNR_GOAL, MIN_PSNR_GOAL = 40.0, 35.0


def _start_picture() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (960, 720))
    draw = ImageDraw.Draw(img)
    for y in range(720):
        draw.line([(0, y), (960, y)], fill=(40 + y // 6, 110 + y // 8, 230 - y // 8))
    draw.ellipse([600, 80, 760, 240], fill=(255, 214, 80))
    draw.polygon([(0, 720), (0, 450), (300, 380), (620, 470), (960, 400), (960, 720)], fill=(46, 139, 87))
    draw.rectangle([180, 430, 340, 540], fill=(200, 60, 50))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _last_frame_jpeg(path: Path) -> bytes:
    import av

    with av.open(str(path)) as container:
        frame = None
        for frame in container.decode(video=0):  # noqa: B007
            pass
    buf = io.BytesIO()
    frame.to_image().save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _render_chain(folder: Path) -> list[Path]:
    from framepack_widgets.simulator._render import render_video

    paths, start = [], _start_picture()
    for k, (_prompt, motion) in enumerate(SEGMENTS):
        path = render_video(folder / f"segment{k}.mp4", start, None, motion=motion, duration=SECONDS).path
        paths.append(path)
        start = _last_frame_jpeg(path)
    return paths


def _decode_once(paths: list[Path]) -> int:
    import av

    count = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _frame in container.decode(stream):
                count += 1
    return count


def _planes(path: Path):  # type: ignore[no-untyped-def]
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="yuv420p")


def _psnr(a, b) -> float:  # type: ignore[no-untyped-def]
    import numpy as np

    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def results() -> list[dict]:
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))
    from framepack_widgets.timeline import stitch

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = _render_chain(folder)
        floors, stitches = [], []
        result = None
        for _ in range(REPEATS):  # interleaved, so a busy moment weighs on both alike
            started = time.perf_counter()
            decoded = _decode_once(paths)
            floors.append(time.perf_counter() - started)
            out = folder / "stitched.mp4"
            out.unlink(missing_ok=True)
            started = time.perf_counter()
            result = stitch(paths, out)
            stitches.append(time.perf_counter() - started)
        assert result is not None
        floor, took = statistics.median(floors), statistics.median(stitches)
        ratio = took / floor
        seconds = SECONDS * len(SEGMENTS)
        rows.append({
            "bench": "timeline",
            "metric": f"decoding the {len(SEGMENTS)} segments once ({seconds} s, {decoded} frames): the floor",
            "figure": f"{floor:.2f} s", "goal": "", "met": None,
        })
        rows.append({
            "bench": "timeline", "metric": f"stitching a {len(SEGMENTS)}-segment, {seconds} s timeline",
            "figure": f"{took:.2f} s = {ratio:.1f}x the decode floor",
            "goal": f"<= {RATIO_GOAL:.0f}x", "met": ratio <= RATIO_GOAL,
        })
        joins = len(SEGMENTS) - 1
        rows.append({
            "bench": "timeline", "metric": "stitched frames (sum of the segments' minus one per join)",
            "figure": f"{result.frames} = {sum(result.segment_frames)} - {joins}", "goal": f"= sum - {joins}",
            "met": result.frames == sum(result.segment_frames) - joins,
        })
        stitched = _planes(result.path)
        values = []
        for k, path in enumerate(paths):
            for index, frame in enumerate(_planes(path)):
                if k and index == 0:
                    continue
                values.append(_psnr(frame, next(stitched)))
        mean, low = statistics.fmean(values), min(values)
        size = result.path.stat().st_size
        rows.append({
            "bench": "timeline", "metric": "quality: PSNR of the stitched frames against the segments' own",
            "figure": f"mean {mean:.1f} dB, lowest {low:.1f} dB ({len(values)} frames)",
            "goal": f"mean >= {MEAN_PSNR_GOAL:.0f} dB, each >= {MIN_PSNR_GOAL:.0f} dB",
            "met": mean >= MEAN_PSNR_GOAL and low >= MIN_PSNR_GOAL,
        })
        rows.append({
            "bench": "timeline", "metric": "stitched file against the segments' files",
            "figure": f"{size / 1e6:.1f} MB vs {sum(p.stat().st_size for p in paths) / 1e6:.1f} MB", "goal": "", "met": None,
        })
    return rows


if __name__ == "__main__":
    for row in results():
        print(row)
