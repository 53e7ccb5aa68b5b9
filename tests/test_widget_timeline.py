"""The widget's Extend and Timeline panel, driven as the browser drives them: custom messages
(`_handle_custom_msg`) and the `timeline_info` trait, against the real offline simulator.

Sent messages are captured by replacing `widget.send`; js/tests/timeline.test.js covers the
panel's ES module, tests/browser/test_timeline_panel.py the real thing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.runs import RunStore
from framepack_widgets.simulator import Simulator


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[dict, list[bytes]]] = []

    def __call__(self, content: dict, buffers: Any = None) -> None:
        self.messages.append((content, [bytes(b) for b in (buffers or [])]))

    def of(self, kind: str) -> list[dict]:
        return [m[0] for m in self.messages if m[0].get("type") == kind]


def msg(widget: FramepackWidget, content: dict) -> None:
    widget._handle_custom_msg(content, [])


def picture(color: tuple[int, int, int] = (200, 90, 40)) -> Image.Image:
    arr = np.full((144, 192, 3), color, np.uint8)
    arr[50:80, 40:100] = (20, 160, 220)
    return Image.fromarray(arr)


def assert_no_bytes_in_state(widget: FramepackWidget) -> None:
    _, _, buffers = _remove_buffers(widget.get_state())
    assert buffers == []
    text = json.dumps({k: v for k, v in widget.get_state().items() if k not in ("_esm", "_css")})
    assert not re.search(r"[A-Za-z0-9+/=]{120,}", text)


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=2, long_side=160) as simulator:
        yield simulator


@pytest.fixture
async def widget(sim: Simulator, tmp_path: Path):
    store = RunStore(tmp_path / "store")
    client = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    w = FramepackWidget(client, store=store)
    w.send = Recorder()  # type: ignore[method-assign]
    w.start_image = picture()
    yield w
    await w.runner.aclose()
    await client.close()
    store.close()


SEGMENTS = [{"prompt": "the camera zooms in", "duration": 10}, {"prompt": "it pans left", "duration": 10}]


async def test_a_timeline_planned_in_python_waits_for_start_timeline_then_plays_as_one_video(
    widget: FramepackWidget, sim: Simulator
) -> None:
    sim.clear_requests()
    timeline = widget.timeline([("the camera zooms in", 10), ("it pans left", 10)], max_cost=1.0)
    info = widget._timeline_info
    assert info["status"] == "pending" and info["total_seconds"] == 20 and info["total_cost_usd"] == 0.6
    assert [s["prompt"] for s in info["segments"]] == ["the camera zooms in", "it pans left"]
    assert widget.store.count() == 0, "nothing stored, nothing sent before Start timeline"

    start = {"type": "timeline", "action": "start", "request_id": "view-1", "timeline_id": timeline.timeline_id,
             "segments": SEGMENTS, "shown_cost": 0.6}
    msg(widget, start)
    msg(widget, start)  # a double click (or a second view) starts nothing more
    assert [m["timeline_id"] for m in widget.send.of("timeline_started")] == [timeline.timeline_id]
    assert widget._timeline_info["status"] == "running"
    await timeline
    info = widget._timeline_info
    assert info["status"] == "done" and info["has_video"] and sim.count("create") == 2
    assert [s["stage"] for s in info["segments"]] == ["completed", "completed"]
    assert widget.status["run_id"] == timeline.runs[-1].run_id, "the status followed the segment in progress"
    assert_no_bytes_in_state(widget)

    msg(widget, {"type": "video", "run_id": timeline.timeline_id, "nonce": "n1"})
    chunks = [m for m in widget.send.messages if m[0].get("type") == "video" and m[0].get("run_id") == timeline.timeline_id]
    assert chunks and b"".join(c[1][0] for c in chunks) == timeline.video_path.read_bytes()
    assert all(len(c[1][0]) <= 512 * 1024 for c in chunks)


async def test_the_panel_never_starts_a_timeline_dearer_than_it_showed(widget: FramepackWidget, sim: Simulator) -> None:
    sim.clear_requests()
    msg(widget, {"type": "timeline", "action": "start", "request_id": "view-2", "segments": SEGMENTS, "shown_cost": 0.3})
    [error] = widget.send.of("error")
    assert "max_cost" in error["message"] and error["request_id"] == "view-2"
    assert widget.store.count() == 0 and not widget.send.of("timeline_started")
    msg(widget, {"type": "timeline", "action": "start", "request_id": "view-3",
                 "segments": [{"prompt": "zoom in", "duration": 5}], "shown_cost": 0.15})
    assert "Timeline segment 1" in widget.send.of("error")[-1]["message"]
    assert widget.store.count() == 0


async def test_a_failed_segment_is_retried_from_the_panel(widget: FramepackWidget, sim: Simulator) -> None:
    from framepack_widgets.simulator._faults import Fault

    sim.clear_requests()
    sim.inject(Fault("fail_task", endpoint="create", times=1, message="the model refused"))
    msg(widget, {"type": "timeline", "action": "start", "request_id": "view-4", "segments": SEGMENTS, "shown_cost": 0.6})
    timeline = widget._timelines.shown
    await timeline
    info = widget._timeline_info
    assert info["status"] == "failed" and [s["retry"] for s in info["segments"]] == [True, False]
    assert info["segments"][1]["stage"] == "waiting" and sim.count("create") == 1
    msg(widget, {"type": "timeline", "action": "retry", "timeline_id": timeline.timeline_id, "segment": 0})
    await timeline
    assert widget._timeline_info["status"] == "done" and sim.count("create") == 3


async def test_extend_fills_the_inputs_from_the_last_frame_and_the_chain_shows_and_plays(
    widget: FramepackWidget, sim: Simulator
) -> None:
    widget.prompt, widget.negative_prompt, widget.duration = "the camera zooms in", "blurry", 12
    widget.end_image = picture((10, 10, 10))
    first = widget.generate()
    await first
    widget.prompt, widget.negative_prompt = "something else", ""
    msg(widget, {"type": "extend", "run_id": first.run_id})
    assert widget.send.of("extended") == [{"type": "extended", "run_id": first.run_id}]
    assert (widget.prompt, widget.negative_prompt, widget.duration) == ("the camera zooms in", "blurry", 12)
    assert widget.end_image is None and widget._start_image_info["name"] == f"last frame of run #{first.seq}"
    assert (widget.start_image.width, widget.start_image.height) == first.last_frame().size
    widget.prompt = "it pans left"
    second = widget.generate()
    assert second.parent_id == first.run_id
    await second
    cards = {c["id"]: c for c in widget._history}
    assert cards[second.run_id]["chain"] == {"part": 2, "of": 2} and cards[second.run_id]["parent_id"] == first.run_id
    assert cards[first.run_id]["chain"] == {"part": 1, "of": 2}, "the first part's card learns of its continuation"

    widget.start_image = picture((0, 200, 0))  # another image: the next run continues nothing
    third = widget.generate()
    assert third.parent_id is None
    await third

    msg(widget, {"type": "chain", "run_id": first.run_id})
    chain = widget._timelines.shown
    assert chain.kind == "chain" and [r.run_id for r in chain.runs] == [first.run_id, second.run_id]
    await chain
    assert widget._timeline_info["status"] == "done" and widget._timeline_info["has_video"]
    assert widget._timeline_info["total_seconds"] == 24

    msg(widget, {"type": "extend", "run_id": "no-such-run"})
    assert "Could not extend" in widget.send.of("error")[-1]["message"]


async def test_a_new_widget_carries_on_a_stored_timeline_and_shows_it(sim: Simulator, tmp_path: Path) -> None:
    """Segments left waiting in the store (a kernel stopped between two segments) are
    continued by the next widget on that store; nothing already done is sent again."""
    from framepack_widgets.runs import Runner
    from framepack_widgets.timeline import plan_timeline

    sim.clear_requests()
    store = RunStore(tmp_path / "store")
    async with AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
        runner = Runner(client, store)
        plan = plan_timeline(picture(), [("zoom in", 10), ("pan left", 10), ("tilt up", 10)])
        ids = ["seg-a", "seg-b", "seg-c"]
        held = [runner.hold(plan.inputs[k], timeline_id="timeline-left", segment=k,
                            parent_id=ids[k - 1] if k else None, run_id=ids[k], with_start_image=k == 0)
                for k in (2, 1, 0)][::-1]
        first = runner.release(held[0], held[0].input)
        await first  # the kernel "stops" here: segments 2 and 3 are still waiting
        await runner.aclose()
        assert sim.count("create") == 1

        w = FramepackWidget(client, store=store)
        timeline = w._timelines.shown
        assert timeline is not None and timeline.timeline_id == "timeline-left"
        await timeline
        assert w._timeline_info["status"] == "done" and sim.count("create") == 3
        assert [r.run_id for r in timeline.runs] == ids
        await w.runner.aclose()
    store.close()


@pytest.mark.parametrize("shown_cost", ["missing", None, "0.6", True, -1, float("nan"), float("inf"), [0.6]])
async def test_a_panel_start_without_the_price_it_showed_is_refused(
    widget: FramepackWidget, sim: Simulator, shown_cost: Any
) -> None:
    """Start timeline carries the price the panel showed (its consent figure): without a
    number there (or with one no price can be), nothing is stored or sent, and the panel
    says so."""
    sim.clear_requests()
    start = {"type": "timeline", "action": "start", "request_id": "view-nocost", "segments": SEGMENTS}
    if shown_cost != "missing":
        start["shown_cost"] = shown_cost
    msg(widget, start)
    [error] = widget.send.of("error")
    assert error["request_id"] == "view-nocost"
    assert "price" in error["message"] and "Nothing was sent" in error["message"]
    assert "went wrong" not in error["message"]
    assert not widget.send.of("timeline_started") and widget.store.count() == 0 and sim.count("create") == 0
    assert widget._timelines.shown is None


async def test_a_planned_timeline_is_not_started_for_less_than_its_price(
    widget: FramepackWidget, sim: Simulator
) -> None:
    """A timeline planned in Python shows its price in the panel; a Start timeline that
    says it showed less (an old view, or a forged message) does not start it."""
    sim.clear_requests()
    timeline = widget.timeline([("the camera zooms in", 10), ("it pans left", 10)])  # $0.60, no cap of its own
    start = {"type": "timeline", "action": "start", "request_id": "view-cheap", "timeline_id": timeline.timeline_id,
             "segments": SEGMENTS}
    for request_id, cost, words in (("view-cheap", 0.3, "$0.60, more than the $0.30"), ("view-none", None, "price")):
        msg(widget, {**start, "request_id": request_id, "shown_cost": cost})
        error = widget.send.of("error")[-1]
        assert error["request_id"] == request_id
        assert words in error["message"] and "Nothing was sent" in error["message"]
    assert timeline.status == "pending" and widget.store.count() == 0 and sim.count("create") == 0
    msg(widget, {**start, "request_id": "view-ok", "shown_cost": 0.6})
    assert [m["timeline_id"] for m in widget.send.of("timeline_started")] == [timeline.timeline_id]
    await timeline
    assert timeline.status == "done" and sim.count("create") == 2
