"""How long does writing a shared gallery of 10 runs take, and how big is its page?

Makes 10 real runs with the offline simulator (10-30 s videos, 10 distinct prompts, so 90
word diffs in the page), then times `export_gallery` (videos copied, posters decoded from
the middle of each video, the page written) and weighs index.html, which holds every
script and style the page runs (the videos and posters aside).
Goals: written in at most 2 s; index.html + scripts at most 100 KB.

Run: python bench/bench_gallery.py   (or bench/run.py gallery)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = 10
REPEATS = 3


def results() -> list[dict]:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE.parent / "tests"))
    from framepack_widgets.gallery import export_gallery
    from gallery_runs import make_runs

    prompts = [f"the camera {verb} slowly {where}" for verb, where in zip(
        ["zooms in", "pans left", "pans right", "zooms out", "tilts up", "tilts down", "orbits", "drifts", "pushes in", "pulls back"],
        ["on the house", "across the hills", "over the meadow", "from the valley", "to the sky", "to the flowers",
         "around the house", "past the sun", "towards the door", "from the garden"],
    )]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        specs = [{"prompt": p, "seed": i, "duration": 10 + 2 * i} for i, p in enumerate(prompts[:RUNS])]
        store, runs = make_runs(folder / "store", specs)
        try:
            times = []
            for k in range(REPEATS):
                started = time.perf_counter()
                index = export_gallery(runs, folder / f"gallery{k}")
                times.append(time.perf_counter() - started)
            page = index.stat().st_size
            videos = sum(p.stat().st_size for p in (index.parent / "videos").iterdir())
            posters = sum(p.stat().st_size for p in (index.parent / "posters").iterdir())
        finally:
            store.close()
    best, median = min(times), statistics.median(times)
    return [
        {"bench": "gallery", "metric": f"gallery of {RUNS} runs written (median of {REPEATS}, best)",
         "figure": f"{median:.2f} s ({best:.2f} s best)", "goal": "<= 2 s", "met": median <= 2.0},
        {"bench": "gallery", "metric": "index.html with every script and style inlined",
         "figure": f"{page / 1024:.1f} KB", "goal": "<= 100 KB", "met": page <= 100 * 1024},
        {"bench": "gallery", "metric": "videos and posters beside it",
         "figure": f"{videos / 1e6:.1f} MB videos, {posters / 1024:.0f} KB posters", "goal": "", "met": None},
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from run import print_table

    print_table(results())
