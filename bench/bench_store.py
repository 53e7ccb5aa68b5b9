"""Run store benchmarks (issue 4): open a store of 10,000 runs and show the first page of
history (goal: at most 200 ms, memory not growing with the number of runs), and add a run
(goal: at most 5 ms median).

    .venv/bin/python bench/bench_store.py     # prints a table
    .venv/bin/python bench/run.py store       # the same rows among the other benchmarks

"Open + first page" is what the widget does when a notebook opens: `RunStore(folder)`,
`store.list(limit=50)`, `store.count()` and one `Run.to_dict()` per run. "Add a run" is what
`Runner.start()` writes before sending anything: `Run.from_input(input)`, `put_image`, `save`.
Memory is the tracemalloc peak of Python allocations during open + first page (SQLite's
own page cache is C memory, bounded by its cache_size setting, and not counted).
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from framepack_widgets.inputs import FramepackInput  # noqa: E402
from framepack_widgets.runs import Run, RunStage  # noqa: E402
from framepack_widgets.runs import RunStore  # noqa: E402
from framepack_widgets.task import TaskStatus  # noqa: E402

PAGE = 50
OPEN_GOAL_MS = 200.0
ADD_GOAL_MS = 5.0
MEMORY_GOAL_RATIO = 1.5  # peak for 10,000 runs at most this many times the peak for 1,000


def _base_input() -> FramepackInput:
    from PIL import Image

    image = Image.new("RGB", (640, 480))
    image.putdata([((x * 7) % 256, (y * 3) % 256, (x + y) % 256) for y in range(480) for x in range(640)])
    return FramepackInput("a lighthouse on a cliff, waves crash, camera pans left slowly", image)


def _finished_run(base: FramepackInput, i: int, now: datetime) -> Run:
    """A realistic history entry: completed, with its status history and a few log lines."""
    run = Run.from_input(base.replace(prompt=f"{base.prompt} (variant {i})", duration=10 + i % 21), backend="piapi")
    run.created_at = now - timedelta(minutes=10_000 - i)
    run.history[0] = run.history[0]._replace(at=run.created_at)
    run.update(stage=RunStage.SUBMITTING, submitted_at=run.created_at)
    run.update(stage=RunStage.PENDING, task_id=f"task-{i:06d}", status=TaskStatus.PENDING)
    for percent in (10.0, 45.0, 90.0):
        run.update(stage=RunStage.PROCESSING, status=TaskStatus.PROCESSING, percent=percent)
    run.update(logs=("queued", "loading model", "sampling", "encoding"), video_url=f"https://img.example/{i}.mp4")
    run.update(stage=RunStage.COMPLETED, status=TaskStatus.COMPLETED, percent=100.0,
               video_sha=f"{i:064x}", finished_at=run.created_at + timedelta(seconds=90 + i % 60))
    return run


def build_store(folder: Path, n: int, base: FramepackInput) -> float:
    """Fill a store with n finished runs through the public save(); returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    with RunStore(folder) as store:
        store.put_image(base.start_image)
        for i in range(n):
            store.save(_finished_run(base, i, now))
    return time.perf_counter() - started


def open_first_page(folder: Path) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    store = RunStore(folder)
    runs = store.list(limit=PAGE)
    total = store.count()
    cards = [run.to_dict(history=False) for run in runs]
    elapsed = time.perf_counter() - started
    store.close()
    assert len(cards) == min(PAGE, total)
    return elapsed, cards


def peak_memory(folder: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        open_first_page(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def measure_adds(folder: Path, base: FramepackInput, n: int = 1000) -> list[float]:
    """Milliseconds per add, the way Runner.start() stores a run before sending it."""
    times: list[float] = []
    inputs = [base.replace(prompt=f"new run {i}") for i in range(n)]
    with RunStore(folder) as store:
        for inp in inputs:
            started = time.perf_counter()
            run = Run.from_input(inp)
            store.put_image(inp.start_image)
            store.save(run)
            times.append((time.perf_counter() - started) * 1000)
    return times


def deep_page_ms(folder: Path) -> tuple[float, float]:
    """The last page by offset versus by keyset (before=seq)."""
    with RunStore(folder) as store:
        total = store.count()
        started = time.perf_counter()
        by_offset = store.list(limit=PAGE, offset=total - PAGE)
        offset_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        by_keyset = store.list(limit=PAGE, before=by_offset[0].seq + 1)
        keyset_ms = (time.perf_counter() - started) * 1000
        assert [r.run_id for r in by_keyset] == [r.run_id for r in by_offset]
    return offset_ms, keyset_ms


def results() -> list[dict]:
    rows: list[dict] = []
    base = _base_input()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        small, large = Path(tmp) / "runs-1000", Path(tmp) / "runs-10000"
        build_small = build_store(small, 1_000, base)
        build_large = build_store(large, 10_000, base)
        rows.append({"bench": "store", "metric": "build 10,000 runs (public save, 1 transaction each)",
                     "figure": f"{build_large:.1f} s ({build_large / 10_000 * 1000:.2f} ms/run)", "goal": "", "met": None})

        open_first_page(large)  # warm the OS file cache, as a reopened notebook would find it
        timings = sorted(open_first_page(large)[0] * 1000 for _ in range(7))
        median_open = statistics.median(timings)
        rows.append({"bench": "store", "metric": f"open 10,000-run store + first page ({PAGE} runs), median of 7",
                     "figure": f"{median_open:.1f} ms (max {timings[-1]:.1f} ms)",
                     "goal": f"<= {OPEN_GOAL_MS:.0f} ms", "met": median_open <= OPEN_GOAL_MS})

        peak_small, peak_large = peak_memory(small), peak_memory(large)
        ratio = peak_large / peak_small
        rows.append({"bench": "store", "metric": "memory peak, open + first page: 1,000 vs 10,000 runs",
                     "figure": f"{peak_small / 1024:.0f} KiB vs {peak_large / 1024:.0f} KiB (x{ratio:.2f})",
                     "goal": f"not growing (<= x{MEMORY_GOAL_RATIO})", "met": ratio <= MEMORY_GOAL_RATIO})

        offset_ms, keyset_ms = deep_page_ms(large)
        rows.append({"bench": "store", "metric": "last page of 10,000: offset vs keyset (before=seq)",
                     "figure": f"{offset_ms:.1f} ms vs {keyset_ms:.1f} ms", "goal": "", "met": None})

        adds = measure_adds(large, base)
        adds.sort()
        median_add = statistics.median(adds)
        p95 = adds[int(len(adds) * 0.95)]
        rows.append({"bench": "store", "metric": "add a run (Run + put_image + save), 1,000 adds to 10,000",
                     "figure": f"{median_add:.2f} ms median, {p95:.2f} ms p95",
                     "goal": f"<= {ADD_GOAL_MS:.0f} ms median", "met": median_add <= ADD_GOAL_MS})
        with RunStore(large) as store:
            size = store.size_bytes()
        rows.append({"bench": "store", "metric": "store size, 11,000 runs (db + 1 image, no videos)",
                     "figure": f"{size / 2**20:.1f} MiB", "goal": "", "met": None})
        del build_small
    return rows


def _print(rows: list[dict]) -> None:
    headers = ("bench", "metric", "figure", "goal", "met")
    cells = [[str(r.get(h, "")) if h != "met" else {True: "yes", False: "NO", None: "-"}[r["met"]] for h in headers]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


if __name__ == "__main__":
    table = results()
    _print(table)
    sys.exit(0 if all(r["met"] is not False for r in table) else 1)
