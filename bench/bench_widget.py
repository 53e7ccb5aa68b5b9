"""Widget figures that need no browser: what the shipped frontend weighs, and how much ten
runs add to the widget state a notebook saves ("save widget state").

Goals (issue 16): the shipped JS + CSS (framepack_widgets/static/widget.js + widget.css, built
and minified by js/build.mjs) at most 45 KB; before issue 16 the same files were shipped
unminified, 61,422 bytes. anywidget stores `_esm` and `_css` in every widget instance's saved
state, so the bundle is also what each widget adds to a saved notebook ("per instance").
Ten runs add at most 100 KB to the saved .ipynb: the state figure builds ten stored runs (no
simulator needed), opens a widget on them with a comparison of four, and measures the JSON
of its synced state without the constant frontend code (_esm/_css), plus the snapshot output
saved beside the widget (issue 11: text and a poster of at most 12 KB).

Run: .venv/bin/python bench/run.py widget (the frontend must be built: bash .ci/setup)
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_GOAL = 100 * 1000

# The same figures the budget test reads (tests/test_frontend_build.py).
sys.path.insert(0, str(ROOT / "tests"))
from frontend_size import (  # noqa: E402
    BUNDLE_BUDGET,
    PER_INSTANCE_BEFORE,
    UNMINIFIED_BEFORE,
    gzip_size,
    per_instance_bytes,
    shipped_sizes,
)


def state_growth(runs: int = 10) -> tuple[tuple[int, int], tuple[int, int]]:
    """(synced state, snapshot output) in bytes with no runs, then with `runs` runs and a comparison."""
    import httpx
    from PIL import Image

    from framepack_widgets import FramepackWidget
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Run, RunStage, RunStore

    def size(widget: FramepackWidget) -> tuple[int, int]:
        state = {k: v for k, v in widget.get_state().items() if k not in ("_esm", "_css")}
        return len(json.dumps(state)), len(json.dumps(widget._snapshot_data()))

    # A start image with a photo's grain (gradients and noise), so the poster is as big as a
    # photo's, not a flat colour's.
    import numpy as np

    y, x = np.mgrid[0:960, 0:1280]
    grain = np.random.default_rng(0).normal(0, 14, (960, 1280, 3))
    pixels = np.stack([x / 1280 * 200 + 30, y / 960 * 160 + 60, (x + y) / 2240 * 120 + 80], axis=-1) + grain
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "store")
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
        client = AsyncClient("bench", base_url="http://127.0.0.1:9", http_client=http)
        widget = FramepackWidget(client, store=store)
        widget.start_image = buf.getvalue()
        widget.prompt = "a long prompt about a red square while the camera slowly zooms in " * 4
        empty = size(widget)
        widget.close()
        inp = FramepackInput(widget.prompt, widget.start_image, duration=30)
        store.put_image(inp.start_image)
        for i in range(runs):
            run = Run.from_input(inp.replace(prompt=f"{i}: {inp.prompt}"), backend="simulator")
            run.update(stage=RunStage.COMPLETED, percent=100.0, logs=tuple(f"log line {n}" for n in range(40)))
            store.save(run)
        widget = FramepackWidget(client, store=store)
        widget.start_image = buf.getvalue()
        widget.prompt = inp.prompt
        widget.compare(*[card["id"] for card in widget._history[:4]])
        full = size(widget)
        widget.close()
        store.close()
    return empty, full


def results() -> list[dict]:
    sizes = shipped_sizes()
    total = sum(sizes.values())
    rows = [
        {"bench": "widget", "metric": f"static/{name} (minified)", "figure": f"{n / 1024:.1f} KB ({n:,} B)",
         "goal": "", "met": None}
        for name, n in sizes.items()
    ]
    rows.append({
        "bench": "widget", "metric": "widget JS + CSS shipped (minified)",
        "figure": f"{total / 1024:.1f} KB ({total:,} B; before: {UNMINIFIED_BEFORE:,} B unminified)",
        "goal": f"<= {BUNDLE_BUDGET // 1024} KB", "met": total <= BUNDLE_BUDGET,
    })
    gz = gzip_size()
    rows.append({"bench": "widget", "metric": "widget JS + CSS gzipped (for information)",
                 "figure": f"{gz / 1024:.1f} KB ({gz:,} B)", "goal": "", "met": None})
    each = per_instance_bytes()
    rows.append({
        "bench": "widget", "metric": "frontend code per widget in a saved notebook (_esm + _css as JSON)",
        "figure": f"{each / 1024:.1f} KB ({each:,} B; before: {PER_INSTANCE_BEFORE:,} B)",
        "goal": "", "met": None,
    })
    (state0, snap0), (state, snap) = state_growth()
    added = state + snap - state0 - snap0
    rows.append({
        "bench": "widget", "metric": "snapshot output with the last run (text, poster)", "figure": f"{snap / 1000:.1f} kB",
        "goal": "", "met": None,
    })
    rows.append({
        "bench": "widget", "metric": "synced state + snapshot added by 10 runs + a comparison",
        "figure": f"{added / 1000:.1f} kB", "goal": f"<= {STATE_GOAL // 1000} kB", "met": added <= STATE_GOAL,
    })
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import print_table

    print_table(results())
