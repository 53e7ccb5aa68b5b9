"""How long does exporting a comparison take, and how big is the file?

Makes four 10 s, 640x360, 30 fps H.264 clips (moving gradients, like the simulator's
output), then exports 2 of them side by side and all 4 as a 2x2 grid at the default size
(tiles 360 px tall). Goal: faster than real time (a 10 s comparison in at most 10 s), so
the widget's Export button answers while the person waits. Also times a run card.

Run: python bench/bench_export.py   (or bench/run.py export)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

SECONDS = 10
FPS = 30
W, H = 640, 360


def _clip(path: Path, seed: int) -> Path:
    import av
    import numpy as np

    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(SECONDS * FPS):
            t = i / FPS
            r = (128 + 127 * np.sin(x / 40 + t * (1 + seed))).astype(np.uint8)
            g = (128 + 127 * np.sin(y / 30 - t * 2)).astype(np.uint8)
            b = np.full_like(r, (seed * 60) % 255)
            frame = av.VideoFrame.from_ndarray(np.dstack([r, g, b]), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def results() -> list[dict]:
    here = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(here))
    from framepack_widgets.export import export_comparison, export_run_card
    from framepack_widgets.runs import Run

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = [_clip(folder / f"clip{k}.mp4", k) for k in range(4)]
        labels = ["“camera zooms in”", "“camera pans left”", "“static” · 20 s", "not “blurry”"]
        for n in (2, 4):
            started = time.perf_counter()
            out = export_comparison(clips[:n], labels[:n], folder / f"cmp{n}.mp4")
            elapsed = time.perf_counter() - started
            rows.append(
                {
                    "bench": "export",
                    "metric": f"comparison of {n} x {SECONDS} s {W}x{H} clips",
                    "figure": f"{elapsed:.2f} s ({SECONDS / elapsed:.1f}x real time), {out.stat().st_size / 1e6:.1f} MB",
                    "goal": f"<= {SECONDS} s",
                    "met": elapsed <= SECONDS,
                }
            )
        run = Run.from_dict({
            "run_id": "bench", "task_id": "t", "backend": "simulator", "stage": "completed", "status": "completed",
            "params": {"prompt": "camera zooms in", "duration": 10}, "video_path": str(clips[0]),
        })
        started = time.perf_counter()
        export_run_card(run, folder / "cards")
        elapsed = time.perf_counter() - started
        rows.append({"bench": "export", "metric": "run card (card.json + poster)", "figure": f"{elapsed * 1000:.0f} ms", "goal": "", "met": None})
    return rows


if __name__ == "__main__":
    for row in results():
        print(row)
