"""Real finished runs for the gallery's tests and benchmark: made by the offline simulator
over loopback HTTP and kept in a RunStore, as the widget would have them.

Not a test module: tests/test_gallery.py, tests/browser/test_gallery_from_file.py and
bench/bench_gallery.py import `make_runs`.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Sequence
from pathlib import Path

from framepack_widgets.client import AsyncClient
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, Runner, RunStore
from framepack_widgets.simulator import Simulator


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small JPEG made here (sky, sun, meadow), different for each seed."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, (60 + 30 * (seed % 5), 120, 220 - 25 * (seed % 4)))
    draw = ImageDraw.Draw(img)
    draw.ellipse([w * 0.6, h * 0.1, w * 0.8, h * 0.35], fill=(255, 215, 90))
    draw.rectangle([0, h * 0.65, w, h], fill=(40, 140 + 10 * (seed % 6), 80))
    draw.rectangle([w * 0.15 + 7 * seed % 60, h * 0.5, w * 0.35 + 7 * seed % 60, h * 0.75], fill=(200, 60, 50))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


async def _make(store: RunStore, specs: Sequence[dict], time_scale: float) -> list[Run]:
    with Simulator(time_scale=time_scale, render_workers=2) as sim:
        async with AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
            runner = Runner(client, store, max_concurrent=4)
            try:
                runs = [
                    runner.start(FramepackInput(
                        s["prompt"], picture(s.get("seed", i)), negative_prompt=s.get("negative_prompt", ""),
                        duration=s.get("duration", 10),
                    ))
                    for i, s in enumerate(specs)
                ]
                for run in runs:
                    await run
            finally:
                await runner.aclose()
    return runs


def make_runs(store_dir: Path, specs: Sequence[dict], *, time_scale: float = 200) -> tuple[RunStore, list[Run]]:
    """Finished runs for `specs` (dicts: prompt, negative_prompt?, duration?, seed?), in a new
    RunStore at `store_dir`. Runs its own event loop in a thread, so it works beside
    Playwright's sync API (which keeps one running in the main thread)."""
    store = RunStore(store_dir)
    result: dict[str, object] = {}

    def work() -> None:
        try:
            result["runs"] = asyncio.run(_make(store, specs, time_scale))
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return store, result["runs"]  # type: ignore[return-value]
