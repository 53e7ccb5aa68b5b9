"""Widget figures that need no browser: the size of the shipped frontend, and how much ten
runs add to the widget state a notebook saves ("save widget state").

Goals (issue 3): js/widget.js + js/widget.css at most 60 KB together, unminified; ten runs
add at most 100 KB to the saved .ipynb. The state figure builds ten stored runs (no
simulator needed), opens a widget on them with a comparison of four, and measures the
JSON of its synced state without the constant frontend code (_esm/_css), plus the snapshot
output saved beside the widget (issue 11: text and a poster of at most 12 KB).

Run: python bench/bench_widget.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JS_CSS_GOAL = 60 * 1024
STATE_GOAL = 100 * 1000


def frontend_sizes() -> dict[str, int]:
    return {name: (ROOT / "js" / name).stat().st_size for name in ("widget.js", "widget.css")}


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
        widget.compare(*[card["id"] for card in widget.history[:4]])
        full = size(widget)
        widget.close()
        store.close()
    return empty, full


def results() -> list[dict]:
    sizes = frontend_sizes()
    total = sum(sizes.values())
    rows = [
        {"bench": "widget", "metric": f"{name} size", "figure": f"{n / 1024:.1f} KB", "goal": "", "met": None}
        for name, n in sizes.items()
    ]
    rows.append({
        "bench": "widget", "metric": "widget.js + widget.css (unminified)", "figure": f"{total / 1024:.1f} KB",
        "goal": f"<= {JS_CSS_GOAL // 1024} KB", "met": total <= JS_CSS_GOAL,
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
