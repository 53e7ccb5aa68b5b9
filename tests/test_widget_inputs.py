"""The widget's inputs as a newcomer meets them (issue 16): runs numbered per store and called
by their number, the start image's origin ("last frame of run #3 · back to lake_cabin.jpg"),
Loop, several images at once (an image sweep) and an MP4's settings dropped back in.

Driven the way the browser drives the widget (custom messages, trait updates), against the
real offline simulator over loopback HTTP; js/tests/inputs.test.js covers the frontend's
half, tests/browser/test_inputs_in_lab.py the real thing.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.errors import InvalidInputError
from framepack_widgets.runs import Run, Runner, RunStage, RunStore
from framepack_widgets.simulator import Simulator
from framepack_widgets.video import read_settings
from framepack_widgets.widget import _protocol as proto
from framepack_widgets.widget._slots import MAX_BATCH_IMAGES
from framepack_widgets.widget._snapshot import snapshot_text


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[dict, list[bytes]]] = []

    def __call__(self, content: dict, buffers: Any = None) -> None:
        self.messages.append((content, [bytes(b) for b in (buffers or [])]))

    def of(self, kind: str) -> list[dict]:
        return [m[0] for m in self.messages if m[0].get("type") == kind]


def msg(widget: FramepackWidget, content: dict, buffers: list[bytes] | None = None) -> None:
    widget._handle_custom_msg(content, [memoryview(b) for b in (buffers or [])])


def upload(widget: FramepackWidget, data: bytes, name: str, *, mime: str = "image/jpeg", batch: list | None = None,
           chunk: int = 64 * 1024) -> None:
    """As js/src/uploads.js sends a file: in chunks, one upload id."""
    pieces = [data[i:i + chunk] for i in range(0, max(len(data), 1), chunk)]
    for index, piece in enumerate(pieces):
        msg(widget, {"type": "upload", "slot": "start", "name": name, "mime": mime, "size": len(data),
                     "upload_id": f"u-{name}", "index": index, "count": len(pieces), "total": len(data),
                     "batch": batch}, [piece])


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (192, 144)) -> bytes:
    arr = np.full((size[1], size[0], 3), color, np.uint8)
    arr[40:80, 30:90] = (20, 160, 220)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", quality=90)
    return out.getvalue()


def mp4_without_settings(path: Path) -> Path:
    """A real MP4 that no framepack_widgets code wrote (so it carries no settings)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=2, long_side=160) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator):
    c = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    yield c
    await c.close()


@pytest.fixture
async def widget(client: AsyncClient, tmp_path: Path):
    store = RunStore(tmp_path / "store")
    w = FramepackWidget(client, store=store)
    w.send = Recorder()  # type: ignore[method-assign]
    cabin = tmp_path / "lake_cabin.jpg"
    cabin.write_bytes(jpeg((200, 90, 40)))
    w.start_image = cabin
    w.prompt = "the camera zooms in slowly"
    yield w
    await w.runner.aclose()
    w.close()
    store.close()


# --------------------------------------------------------------------------- run numbers
async def test_runs_are_numbered_per_store_and_keep_their_numbers(client: AsyncClient, tmp_path: Path) -> None:
    stores = [RunStore(tmp_path / "one"), RunStore(tmp_path / "two")]
    runners = [Runner(client, s) for s in stores]
    a1, a2 = runners[0].start(_input("a")), runners[0].start(_input("b"))
    b1 = runners[1].start(_input("c"))
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1), "each store counts its own runs from 1, stored before sending"
    assert (a1.label, a2.label, b1.label) == ("#1", "#2", "#1")
    await asyncio.gather(a1, a2, b1)
    a3 = runners[0].start(_input("d"))
    await a3
    for runner in runners:
        await runner.aclose()
    stores[0].close()
    again = RunStore(tmp_path / "one")  # reopened: every run keeps its number, however often it was saved
    assert {r.run_id: r.seq for r in again.list()} == {a1.run_id: 1, a2.run_id: 2, a3.run_id: 3}
    assert again.get(a2.run_id).label == "#2"
    again.close()
    stores[1].close()


def _input(prompt: str) -> Any:
    from framepack_widgets.inputs import FramepackInput

    return FramepackInput(prompt, jpeg((10, 120, 60)))


async def test_a_person_reads_run_numbers_everywhere(widget: FramepackWidget) -> None:
    first = widget.generate()
    await first
    widget.prompt = "the camera pans left"
    second = widget.generate()
    await second
    assert (first.seq, second.seq) == (1, 2)
    assert repr(second).startswith("<Run #2 completed 10s 'the camera pans left'")
    assert "# Run #2 (run id " in second.code() and "'run-2.mp4'" in second.code()
    assert widget.status["number"] == 2
    assert [c["seq"] for c in widget._history] == [2, 1]
    text = snapshot_text(second, backend_label="x", total=2)
    assert "run #2 \u00b7 completed" in text
    widget.compare(1, "#2")  # run numbers, as the cards show them
    assert widget._comparison["run_ids"] == [first.run_id, second.run_id]
    assert [i["label"] for i in widget._comparison["items"]] == ["#1", "#2"]
    widget.compare(first, second.run_id)
    with pytest.raises(InvalidInputError, match="no run #9"):
        widget.compare(1, 9)
    widget.extend_from(second)
    assert widget._notice.startswith("Extending run #2:")
    timeline = widget.show_chain(second)
    assert timeline is not None
    assert widget._timeline_info["starts_from"] == "the start image of run #2"
    assert [s["number"] for s in widget._timeline_info["segments"]] == [2]


# --------------------------------------------------------------------------- the start image's origin
async def test_after_extend_the_start_image_says_whose_last_frame_it_is_and_goes_back(widget: FramepackWidget) -> None:
    cabin = widget.start_image
    assert widget.start_image_origin is None and "origin" not in widget._start_image_info
    first = widget.generate()
    await first
    msg(widget, {"type": "extend", "run_id": first.run_id})
    origin = widget.start_image_origin
    assert origin == {"text": "last frame of run #1", "continues": first.run_id, "back_to": "lake_cabin.jpg"}
    info = widget._start_image_info
    assert (info["name"], info["origin"], info["back"]) == ("last frame of run #1", "last frame of run #1", "lake_cabin.jpg")
    plan = widget.timeline([("it keeps going", 10)])
    assert widget._timeline_info["starts_from"] == "last frame of run #1", "the Timeline panel says its image"
    plan.cancel()

    second = widget.generate()  # continues run #1
    await second
    assert second.parent_id == first.run_id
    msg(widget, {"type": "extend", "run_id": second.run_id})  # Extend again: back still goes to the cabin
    assert widget.start_image_origin["back_to"] == "lake_cabin.jpg"
    assert widget._start_image_info["name"] == "last frame of run #2"

    msg(widget, {"type": "image_back", "slot": "start"})  # the slot's "back to lake_cabin.jpg"
    assert widget.start_image.sha256 == cabin.sha256
    assert widget.start_image_origin is None and "back" not in widget._start_image_info
    assert widget._start_image_info["name"] == "lake_cabin.jpg"
    third = widget.generate()  # a plain Generate: no longer part 2 of anything
    await third
    assert third.parent_id is None
    assert widget.restore_start_image() is False, "nothing to go back to now"


async def test_setting_another_image_clears_the_origin(widget: FramepackWidget, tmp_path: Path) -> None:
    first = widget.generate()
    await first
    widget.extend_from(first)
    assert widget.start_image_origin is not None
    widget.start_image = jpeg((0, 0, 250))
    assert widget.start_image_origin is None and "origin" not in widget._start_image_info
    assert widget.restore_start_image() is False
    run = widget.generate()
    assert run.parent_id is None


# --------------------------------------------------------------------------- Loop
async def test_loop_makes_the_start_image_the_end_image_and_runs_remember_it(client: AsyncClient, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    w = FramepackWidget(client, store=store, loop=True, start_image=jpeg((200, 90, 40)))
    w.send = Recorder()  # type: ignore[method-assign]
    try:
        assert w.loop is True and w.end_image is None, "the End image slot keeps its own (none) while Loop shows"
        w.prompt = "waves roll in"
        run = w.generate()
        assert run.loop and run.end_image_sha == run.start_image_sha
        await run
        assert w._history[0]["loop"] is True and "loop" in repr(run)
        again = run.rerun(start_image=jpeg((0, 80, 200)))  # Rerun keeps Loop, on the new image too
        assert again.loop and again.start_image_sha != run.start_image_sha
        plan = w.timeline([("waves roll in", 10), ("the tide goes out", 10)])
        last = plan.plan.inputs[-1]
        assert last.end_image is not None and last.end_image.sha256 == run.start_image_sha
        assert plan.plan.inputs[0].end_image is None, "only the last segment ends on the start image"
        plan.cancel()
        explicit = w.timeline([("a", 10), ("b", 10)], end_image=jpeg((9, 9, 9)))
        assert explicit.plan.inputs[-1].end_image.sha256 != run.start_image_sha, "an end_image given wins"
        explicit.cancel()
        w.end_image = jpeg((250, 250, 0))  # an end image of its own turns Loop off
        assert w.loop is False
        plain = w.generate()
        assert not plain.loop and plain.end_image_sha not in (None, plain.start_image_sha)
        await asyncio.gather(again, plain)
    finally:
        await w.runner.aclose()
        w.close()
        store.close()


# --------------------------------------------------------------------------- several images
async def test_several_images_dropped_at_once_plan_an_image_sweep_nothing_sent(widget: FramepackWidget, sim: Simulator) -> None:
    sim.clear_requests()
    names = ["lake.jpg", "beach.jpg", "forest.jpg"]
    for index, (name, color) in enumerate(zip(names, [(0, 90, 200), (230, 200, 120), (20, 120, 40)])):
        upload(widget, jpeg(color), name, batch=["b1", index, 3])
        if index < 2:
            assert widget._sweep_info == {}, "planned only once every image is in"
    info = widget._sweep_info
    assert info["state"] == "pending" and info["count"] == 3
    assert "start images: lake.jpg, beach.jpg, forest.jpg" in info["description"]
    assert widget.store.count() == 0 and not sim.requests, "nothing stored or sent before Start sweep"
    assert widget._start_image_info["name"] == "lake_cabin.jpg", "the start image stays as it was"
    msg(widget, {"type": "sweep", "sweep_id": info["sweep_id"], "action": "confirm"})
    await asyncio.wait_for(_finished(widget), 60)
    runs = sorted(widget.runs, key=lambda r: r.seq)
    assert [r.params["start_image"]["name"] for r in runs] == names
    assert [i["caption"] for i in widget._comparison["items"]] == names, "the comparison labels them by image"


async def _finished(widget: FramepackWidget) -> None:
    while widget._sweep_info.get("state") != "done" or not widget._comparison:
        await asyncio.sleep(0.02)


async def test_an_image_sweep_from_python_is_priced_and_each_image_checked_first(widget: FramepackWidget, tmp_path: Path) -> None:
    lake = tmp_path / "lake.jpg"
    lake.write_bytes(jpeg((0, 90, 200)))
    with pytest.raises(InvalidInputError, match="Start image 2"):
        widget.sweep(start_image=[lake, tmp_path / "missing.jpg"])
    with pytest.raises(InvalidInputError, match="gives no runs"):
        widget.sweep(start_image=())
    assert widget._sweep_info == {} and widget.store.count() == 0
    sweep = widget.sweep(start_image=[lake, jpeg((1, 2, 3))], duration=[10, 20], max_cost=2)
    assert sweep.count == 4 and not sweep.confirmed
    assert widget._sweep_info["total_cost_usd"] == pytest.approx(1.8)
    widget.loop = True
    looped = widget.sweep(start_image=[lake, jpeg((1, 2, 3))])
    assert all(i.end_image == i.start_image for i in looped.plan.inputs)
    assert sweep.state == "cancelled", "a new plan replaces one that never started"
    assert widget._sweep_info["sweep_id"] == looped.sweep_id and widget.store.count() == 0


async def test_a_batch_without_a_prompt_or_too_large_is_refused_with_a_message(widget: FramepackWidget) -> None:
    widget.prompt = ""
    upload(widget, jpeg((0, 90, 200)), "lake.jpg", batch=["b2", 0, 2])
    upload(widget, jpeg((9, 9, 9)), "beach.jpg", batch=["b2", 1, 2])
    [error] = widget.send.of("error")
    assert "prompt is empty" in error["message"] and error["slot"] == "start"
    assert widget._sweep_info == {} and widget._input_error
    upload(widget, jpeg((0, 90, 200)), "x.jpg", batch=["b3", 0, MAX_BATCH_IMAGES + 1])
    assert f"At most {MAX_BATCH_IMAGES} images" in widget.send.of("error")[-1]["message"]


# --------------------------------------------------------------------------- settings back from a video
async def test_an_mp4_dropped_on_the_widget_restores_its_settings_from_the_store(widget: FramepackWidget, tmp_path: Path) -> None:
    widget.negative_prompt, widget.duration, widget.loop = "blurry", 12, True
    first = widget.generate()
    await first
    settings = read_settings(first.video_path)
    assert settings["run_id"] == first.run_id
    data = first.video_path.read_bytes()
    cabin = widget.start_image

    widget.prompt, widget.negative_prompt, widget.duration, widget.loop = "something else", "", 20, False
    widget.start_image = jpeg((0, 0, 250))
    upload(widget, data, "wave.mp4", mime="video/mp4")
    assert widget._notice == "Settings of run #1 restored from wave.mp4; Loop is on."
    assert (widget.prompt, widget.negative_prompt, widget.duration, widget.loop) == (
        "the camera zooms in slowly", "blurry", 12, True)
    assert widget.start_image.sha256 == cabin.sha256, "the start image from the run store"
    assert widget._start_image_info["name"] == "lake_cabin.jpg"
    assert widget.start_image_origin["text"] == "restored from wave.mp4"
    assert widget.start_image_origin["back_to"] == "image bytes", "back goes to the image before"
    assert not widget.send.of("error")


async def test_a_video_from_elsewhere_restores_its_first_frame(widget: FramepackWidget, client: AsyncClient,
                                                              tmp_path: Path) -> None:
    first = widget.generate()
    await first
    other = FramepackWidget(client, store=RunStore(tmp_path / "other"))  # a store that never saw the run
    other.send = Recorder()  # type: ignore[method-assign]
    try:
        result = other.restore_settings(first.video_path, name="wave.mp4")
        assert result["run_id"] is None and result["start_image"] == "first frame of wave.mp4"
        assert other._notice == "Settings restored from wave.mp4; the start image is its first frame."
        assert other.prompt == "the camera zooms in slowly" and other.start_image is not None
        frame = np.asarray(other.start_image.to_pil().convert("RGB"), dtype=float)
        first_frame = np.asarray(proto.first_frame(first.video_path).convert("RGB").resize(frame.shape[1::-1]), dtype=float)
        assert np.abs(frame - first_frame).mean() < 6
    finally:
        await other.runner.aclose()
        other.close()
        other.store.close()


async def test_a_video_without_settings_or_a_file_that_is_none_changes_nothing(widget: FramepackWidget, tmp_path: Path) -> None:
    before = (widget.prompt, widget.start_image.sha256, widget.duration)
    plain = mp4_without_settings(tmp_path / "holiday.mp4")
    with pytest.raises(InvalidInputError, match="holiday.mp4 carries no settings"):
        widget.restore_settings(plain)
    with pytest.raises(InvalidInputError, match="nope.mp4: no such file"):
        widget.restore_settings(tmp_path / "nope.mp4")
    upload(widget, plain.read_bytes(), "holiday.mp4", mime="video/mp4")
    assert "holiday.mp4 carries no settings" in widget.send.of("error")[-1]["message"]
    upload(widget, b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100, "broken.mp4", mime="video/mp4")
    assert "broken.mp4 is not a video this widget can read" in widget.send.of("error")[-1]["message"]
    upload(widget, b"\x00\x00\x00\x18ftypheic" + b"x" * 100, "photo.heic", mime="image/heic")
    assert "video" not in widget.send.of("error")[-1]["message"], "an ISO-BMFF image is still an image"
    assert (widget.prompt, widget.start_image.sha256, widget.duration) == before
    assert widget._notice == ""
    assert list(widget.store.tmp_dir.iterdir()) == [], "the dropped file is not left behind"


async def test_the_synced_state_holds_the_new_inputs_as_small_json(widget: FramepackWidget) -> None:
    state = widget.get_state()
    assert state["loop"] is False and state["_limits"]["max_batch_images"] == MAX_BATCH_IMAGES
    json.dumps({k: v for k, v in state.items() if k not in ("_esm", "_css")})


def test_a_card_says_loop_only_for_a_looping_run() -> None:
    params = dict(prompt="p", negative_prompt="", duration=10, start_image={"sha256": "s"}, end_image={"sha256": "s"})
    looped = Run.from_dict({"run_id": "a", "seq": 4, "params": params, "stage": RunStage.COMPLETED.value})
    assert proto.run_card(looped)["loop"] is True and proto.run_card(looped)["seq"] == 4
    plain = Run.from_dict({"run_id": "b", "params": {**params, "end_image": None}})
    assert "loop" not in proto.run_card(plain)
