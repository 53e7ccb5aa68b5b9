"""Stitching a timeline: how long next to decoding it, how big, and which frames are the segments' own?

Renders four chained 20 s segments (80 s in all) the way the offline simulator does (640 px,
H.264 with its 60-frame GOP, each segment starting on the previous one's last frame), and
the same four encoded again with a long GOP (250 frames, x264's default and what FramePack
itself writes), then measures for each, in one run:

- the floor: decoding the four files once (as a decoder must to re-encode anything);
- stitching them into one MP4 (`framepack_widgets.timeline.stitch`);
- the frames at the joins (sum of the segments' frames minus one per join);
- how many stitched frames are bit-identical to the segments' own (decoded frames
  compared), how many packets were copied unchanged, and the quality (PSNR) of the frames
  encoded again;
- the file's size next to the segments' together.

Goals (issue 18): stitching within 1x the decode floor, frames outside the GOPs encoded
again bit-identical, the file within 10 % of the segments'. Each figure is printed next to
the stitcher before stream copy (it decoded and encoded every frame again): for the
simulator's GOP the figures it gave in its last bench run, for the long GOP the ones it gave
on these same segments (commit 9168c6d, this 2-core machine). Times are the median of three.

Run: python bench/bench_timeline.py   (or bench/run.py timeline)
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

SEGMENTS = [("the camera zooms in", "zoom_in"), ("the camera pans left", "pan_left"),
            ("the camera tilts up", "tilt_up"), ("the camera zooms out", "zoom_out")]
SECONDS = 20
REPEATS = 3
LONG_GOP = 250
RATIO_GOAL = 1.0
SIZE_GOAL = 0.10  # the stitched file within 10 % of the segments' together
MEAN_PSNR_GOAL, MIN_PSNR_GOAL = 40.0, 35.0
#: The stitcher before stream copy, on the same kind of segments (see the docstring).
BEFORE = {
    "simulator GOP (60)": {"ratio": "3.4x", "size": "6.0 MB vs 2.1 MB", "psnr": "mean 58.4 dB, lowest 54.5 dB"},
    f"long GOP ({LONG_GOP})": {"ratio": "3.3x", "size": "6.6 MB vs 2.4 MB", "psnr": "mean 58.0 dB, lowest 53.9 dB"},
}


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


def _with_long_gop(paths: list[Path], folder: Path) -> list[Path]:
    """The same segments encoded again as the simulator encodes, but for a 250-frame GOP."""
    import av

    out = []
    for k, path in enumerate(paths):
        target = folder / f"long{k}.mp4"
        with av.open(str(path)) as source, av.open(str(target), "w", format="mp4",
                                                   options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = source.streams.video[0].width, source.streams.video[0].height, "yuv420p"
            stream.options = {"crf": "23", "preset": "superfast", "g": str(LONG_GOP)}
            stream.codec_context.time_base = Fraction(1, 30)
            for index, frame in enumerate(source.decode(video=0)):
                frame.pts, frame.time_base = index, Fraction(1, 30)
                frame.pict_type = av.video.frame.PictureType.NONE
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        out.append(target)
    return out


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


def _packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.dts is not None]


def _psnr(a, b) -> float:  # type: ignore[no-untyped-def]
    import numpy as np

    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _measure(label: str, paths: list[Path], folder: Path) -> list[dict]:
    from framepack_widgets.timeline import stitch

    floors, stitches = [], []
    result = None
    out = folder / f"stitched-{label.split()[0]}.mp4"
    for _ in range(REPEATS):  # interleaved, so a busy moment weighs on both alike
        started = time.perf_counter()
        decoded = _decode_once(paths)
        floors.append(time.perf_counter() - started)
        out.unlink(missing_ok=True)
        started = time.perf_counter()
        result = stitch(paths, out)
        stitches.append(time.perf_counter() - started)
    assert result is not None
    before = BEFORE[label]
    floor, took = statistics.median(floors), statistics.median(stitches)
    ratio = took / floor
    seconds = SECONDS * len(SEGMENTS)
    rows = [{
        "bench": "timeline",
        "metric": f"{label}: decoding the {len(SEGMENTS)} segments once ({seconds} s, {decoded} frames): the floor",
        "figure": f"{floor:.2f} s", "goal": "", "met": None,
    }, {
        "bench": "timeline", "metric": f"{label}: stitching a {len(SEGMENTS)}-segment, {seconds} s timeline",
        "figure": f"{took:.2f} s = {ratio:.2f}x the decode floor (before: {before['ratio']})",
        "goal": f"<= {RATIO_GOAL:.0f}x", "met": ratio <= RATIO_GOAL,
    }]
    joins = len(SEGMENTS) - 1
    rows.append({
        "bench": "timeline", "metric": f"{label}: stitched frames (sum of the segments' minus one per join)",
        "figure": f"{result.frames} = {sum(result.segment_frames)} - {joins} (by stream copy: {result.copied})",
        "goal": f"= sum - {joins}", "met": result.frames == sum(result.segment_frames) - joins,
    })
    # Frame by frame against the segment frame each one is (the frame that went at each join skipped).
    dropped = set(result.dropped)
    stitched = _planes(result.path)
    values, identical = [], 0
    for k, path in enumerate(paths):
        for index, frame in enumerate(_planes(path)):
            if (k, index) in dropped:
                continue
            got = next(stitched)
            same = got.shape == frame.shape and bool((got == frame).all())
            identical += same
            values.append(99.0 if same else _psnr(got, frame))
    encoded = [v for v in values if v < 99.0]
    rows.append({
        "bench": "timeline", "metric": f"{label}: stitched frames bit-identical to the segments' own",
        "figure": f"{identical} of {result.frames}; the other {result.frames - identical} are the {joins} GOPs "
                  f"encoded again ({result.encoded_frames} frames)",
        "goal": "all but those encoded again", "met": identical >= result.frames - result.encoded_frames,
    })
    sources = {p for path in paths for p in _packets(path)}
    kept = sum(p in sources for p in _packets(result.path))
    rows.append({
        "bench": "timeline", "metric": f"{label}: packets copied unchanged from the segments",
        "figure": f"{kept} of {result.frames}", "goal": "all but those encoded again",
        "met": kept >= result.frames - result.encoded_frames,
    })
    mean, low = statistics.fmean(values), min(values)
    rows.append({
        "bench": "timeline", "metric": f"{label}: quality: PSNR of the stitched frames against the segments' own",
        "figure": (f"frames encoded again: mean {statistics.fmean(encoded):.1f} dB, lowest {min(encoded):.1f} dB; "
                   f"the rest identical (before: {before['psnr']}, every frame encoded again)") if encoded
                  else "every frame identical",
        "goal": f"mean >= {MEAN_PSNR_GOAL:.0f} dB, each >= {MIN_PSNR_GOAL:.0f} dB",
        "met": mean >= MEAN_PSNR_GOAL and low >= MIN_PSNR_GOAL,
    })
    size, total = result.path.stat().st_size, sum(p.stat().st_size for p in paths)
    rows.append({
        "bench": "timeline", "metric": f"{label}: stitched file against the segments' files",
        "figure": f"{size / 1e6:.2f} MB vs {total / 1e6:.2f} MB ({(size - total) / total:+.1%}) (before: {before['size']})",
        "goal": f"within {SIZE_GOAL:.0%}", "met": abs(size - total) <= SIZE_GOAL * total,
    })
    return rows


def results() -> list[dict]:
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = _render_chain(folder)
        rows += _measure("simulator GOP (60)", paths, folder)
        rows += _measure(f"long GOP ({LONG_GOP})", _with_long_gop(paths, folder), folder)
    return rows


if __name__ == "__main__":
    for row in results():
        print(row)
