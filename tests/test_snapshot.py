"""The static snapshot: an output of its own beside the widget view, kept in step with the
current run, for wherever the widget cannot be drawn. How a kernel keeps a saved notebook's
snapshot current is checked with a real kernel in test_notebooks.py (the hygiene test), what a
browser shows in tests/browser/test_snapshot_without_kernel.py."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.runs import RunStore
from framepack_widgets.simulator import Simulator
from framepack_widgets.widget._snapshot import POSTER_BYTES, POSTER_SIDE, snapshot_html
from gallery_runs import make_runs
from saved_notebook import posters_taken_out

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator):
    c = AsyncClient(sim.api_key, base_url=sim.base_url)
    yield c
    await c.close()


async def close(*widgets: FramepackWidget) -> None:
    for w in widgets:
        await w.runner.aclose()
        w.close()


def poster_of(page: str) -> bytes:
    _, posters = posters_taken_out(page)
    assert len(posters) == 1, page[:300]
    return posters[0]


async def test_the_snapshot_says_the_last_run_with_its_poster(client: AsyncClient, tmp_path: Path) -> None:
    from PIL import Image

    prompt = "the camera zooms in <script>alert(1)</script> & out"
    store, (run,) = make_runs(tmp_path / "store", [{"prompt": prompt, "negative_prompt": "blurry"}])
    w = FramepackWidget(client, store=store)
    try:
        assert "1 run in the history" in w._snapshot_data()["text/html"] and prompt not in w._snapshot_data()["text/plain"]
        w._handle_custom_msg({"type": "show", "run_id": run.run_id}, [])  # a widget opens Ready: its card is clicked
        data = w._snapshot_data()
        page = data["text/html"]
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; out" in page
        assert "completed" in page and "10 s" in page and "Negative prompt: blurry" in page
        assert "run this cell" in page and "synthetic" in page and "1 run in the history" in page
        with Image.open(io.BytesIO(jpeg := poster_of(page))) as poster:
            assert poster.format == "JPEG" and max(poster.size) <= POSTER_SIDE and min(poster.size) > 10
        assert len(jpeg) <= POSTER_BYTES
        text = data["text/plain"]
        assert prompt in text and "completed" in text and "run this cell" in text and "data:" not in text
        # The widget's own output: the view first, and one line of text, no snapshot of its own.
        view, _ = w._repr_mimebundle_()
        assert view[WIDGET_VIEW]["model_id"] == w.model_id and "text/html" not in view
        assert view["text/plain"].startswith("FramePack widget")
    finally:
        await close(w)
        store.close()


async def test_poster_in_notebook_false_keeps_every_image_out(client: AsyncClient, tmp_path: Path) -> None:
    store, (run,) = make_runs(tmp_path / "store", [{"prompt": "pan left"}])
    w = FramepackWidget(client, store=store, poster_in_notebook=False)
    try:
        w._handle_custom_msg({"type": "show", "run_id": run.run_id}, [])
        page = w._snapshot_data()["text/html"]
        assert "pan left" in page and "data:" not in page and "<img" not in page
        assert not re.search(r"[A-Za-z0-9+/]{200,}", page), "no bytes of any kind"
    finally:
        await close(w)
        store.close()


class Displays:
    """IPython's display and update_display, recorded: what a kernel would send the page."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import IPython.display

        self.shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
        monkeypatch.setattr(IPython.display, "display", lambda data, **kw: self.shown.append((data, kw)))
        monkeypatch.setattr(IPython.display, "update_display", lambda data, **kw: self.updates.append((data, kw)))


async def test_the_snapshot_follows_the_runs_and_sends_only_what_changed(
        client: AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    displays = Displays(monkeypatch)
    store = RunStore(tmp_path / "store")
    w = FramepackWidget(client, store=store)
    try:
        w.prompt = "a slow pan"
        w._ipython_display_()
        (view, view_kw), (snap, snap_kw) = displays.shown
        assert WIDGET_VIEW in view and view_kw["raw"] and "metadata" in view_kw
        assert snap_kw == {"raw": True, "display_id": w._snapshot.display_id}
        assert "Prompt: a slow pan" in snap["text/html"] and "0 runs" in snap["text/html"]

        w.prompt = "a slow pan to the left"  # no run yet: the snapshot shows the prompt
        assert "a slow pan to the left" in displays.updates[-1][0]["text/html"]

        image = io.BytesIO()
        Image.new("RGB", (320, 240), (40, 90, 200)).save(image, "PNG")
        w.start_image = image.getvalue()
        run = await w.generate()
        assert run.video_path is not None
        last, kw = displays.updates[-1]
        assert kw == {"raw": True, "display_id": w._snapshot.display_id}
        assert "completed" in last["text/html"] and "a slow pan to the left" in last["text/html"]
        assert "1 run in the history" in last["text/html"]
        poster_of(last["text/html"])
        stages = [u[0]["text/plain"].split("\n")[1] for u in displays.updates[1:]]
        assert len(stages) == len(set(stages)), f"an update that changed nothing was sent: {stages}"

        sent = len(displays.updates)
        w.runs[-1].notify()  # a change the snapshot does not show (as a poll's can be)
        w._snapshot.refresh()
        w.prompt = "typing after the run"  # the snapshot shows the run, not the inputs
        w.duration = 20
        assert len(displays.updates) == sent
    finally:
        await close(w)
        store.close()


def test_a_widget_without_runs_shows_its_prompt() -> None:
    page = snapshot_html(None, backend_label="PiAPI", total=0, prompt="pan left")
    assert "Prompt: pan left" in page and "0 runs in the history" in page and "Last run" not in page


def test_nbconvert_html_shows_the_snapshot_when_no_widget_state_was_saved() -> None:
    """What the README says of nbconvert (and viewers built on it), checked with the real tool."""
    import nbformat
    from nbconvert import HTMLExporter

    html = snapshot_html(None, backend_label="PiAPI", total=3, prompt="pan left across the hills")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={
            "text/plain": "FramePack widget (PiAPI)",
            WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "0" * 32},
        }),
        nbformat.v4.new_output("display_data", data={"text/plain": "plain snapshot", "text/html": html}),
    ]
    nb.cells.append(cell)
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "Prompt: pan left across the hills" in page and "plain snapshot" not in page


def test_a_poster_too_big_for_the_notebook_is_left_out() -> None:
    import numpy as np
    from PIL import Image

    from framepack_widgets.widget._snapshot import snapshot_poster

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    assert snapshot_poster(out.getvalue()) is None, "pure noise cannot fit in 12 KB"
    small = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(small, "JPEG")
    assert snapshot_poster(small.getvalue()) is not None
