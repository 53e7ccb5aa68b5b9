"""The static snapshot in the widget's output (text/html and text/plain beside the view):
what a notebook shows where the widget was when no widget can be drawn. The real browser
check is tests/browser/test_snapshot_without_kernel.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.runs import RunStore
from framepack_widgets.simulator import Simulator
from framepack_widgets.widget._snapshot import snapshot_html
from gallery_runs import make_runs

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


async def test_the_output_carries_a_snapshot_of_the_last_run(sim: Simulator, tmp_path: Path) -> None:
    prompt = "the camera zooms in <script>alert(1)</script> & out"
    store, runs = make_runs(tmp_path / "store", [{"prompt": prompt, "negative_prompt": "blurry"}])
    client = AsyncClient(sim.api_key, base_url=sim.base_url)
    w = FramepackWidget(client, store=store)
    try:
        data, _ = w._repr_mimebundle_()
        assert data[WIDGET_VIEW]["model_id"] == w.model_id, "the widget view is still there, first choice"
        page = data["text/html"]
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; out" in page
        assert "completed" in page and "10 s" in page and "Negative prompt: blurry" in page
        assert "run this cell" in page and "synthetic" in page
        assert "1 run in the history" in page
        assert not re.search(r"[A-Za-z0-9+/]{200,}", page) and "data:" not in page, "no image bytes in the notebook"
        text = data["text/plain"]
        assert prompt in text and "completed" in text and "run this cell" in text
    finally:
        await w.runner.aclose()
        w.close()
        await client.close()
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
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "plain snapshot", "text/html": html,
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "0" * 32},
    })]
    nb.cells.append(cell)
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "Prompt: pan left across the hills" in page and "plain snapshot" not in page


async def test_the_poster_goes_into_the_notebook_only_when_asked(sim: Simulator, tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image

    from framepack_widgets.widget._snapshot import POSTER_BYTES, POSTER_SIDE

    store, _ = make_runs(tmp_path / "store", [{"prompt": "pan left"}])
    client = AsyncClient(sim.api_key, base_url=sim.base_url)
    private = FramepackWidget(client, store=store)
    shared = FramepackWidget(client, store=store, poster_in_notebook=True)
    try:
        assert "data:" not in private._repr_mimebundle_()[0]["text/html"], "no image unless asked"
        page = shared._repr_mimebundle_()[0]["text/html"]
        (src,) = re.findall(r'<img alt="Poster of the last run" src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
        jpeg = base64.b64decode(src)
        assert len(jpeg) <= POSTER_BYTES
        with Image.open(io.BytesIO(jpeg)) as poster:
            assert poster.format == "JPEG" and max(poster.size) <= POSTER_SIDE and min(poster.size) > 10
    finally:
        for w in (private, shared):
            await w.runner.aclose()
            w.close()
        await client.close()
        store.close()


def test_a_poster_too_big_for_the_notebook_is_left_out() -> None:
    import io

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
