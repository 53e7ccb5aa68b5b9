"""The widget's Python half, driven the way the browser drives it: by custom messages
(`_handle_custom_msg(content, buffers)`, as anywidget delivers them) and trait updates,
against the real offline simulator over loopback HTTP.

Sent messages are captured by replacing `widget.send`; nothing here needs a browser
(js/tests/ covers the ES module, tests/browser/ the real thing).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image
from traitlets import TraitError

from framepack_widgets import FramepackWidget
from framepack_widgets.compare import diff_ops
from framepack_widgets.widget import _protocol as proto
from framepack_widgets.client import AsyncClient
from framepack_widgets.errors import InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, RunStage
from framepack_widgets.simulator import Simulator
from framepack_widgets.runs import RunStore
from framepack_widgets.widget import SIMULATOR_LABEL

SECRET = "sk-live-NEVER-IN-STATE-0123456789abcdef"


# --------------------------------------------------------------------------- helpers
def jpeg(color: tuple[int, int, int] = (200, 80, 40), size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=85)
    return out.getvalue()


class Recorder:
    """Stands in for `widget.send`: keeps every custom message the kernel would send."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict, list[bytes]]] = []

    def __call__(self, content: dict, buffers: Any = None) -> None:
        self.messages.append((content, [bytes(b) for b in (buffers or [])]))

    def of(self, kind: str) -> list[tuple[dict, list[bytes]]]:
        return [m for m in self.messages if m[0].get("type") == kind]


def attach(widget: FramepackWidget) -> Recorder:
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    return recorder


def msg(widget: FramepackWidget, content: dict, buffers: list | None = None) -> None:
    """Deliver a message as the frontend would (buffers arrive as memoryviews)."""
    widget._handle_custom_msg(content, [memoryview(b) for b in (buffers or [])])


def synced_state(widget: FramepackWidget) -> dict:
    state = widget.get_state()
    return {k: v for k, v in state.items() if k not in ("_esm", "_css")}


def assert_clean_state(widget: FramepackWidget, *secrets: str) -> str:
    """No binary buffers, no base64 blobs, no secrets in the synced state; returns its JSON."""
    state = widget.get_state()
    _, _, buffers = _remove_buffers(state)
    assert buffers == [], "a trait holds bytes"
    text = json.dumps(synced_state(widget))
    assert not re.search(r"[A-Za-z0-9+/=]{120,}", text), "something like base64 is in the state"
    for secret in secrets:
        assert secret not in json.dumps(state)
    return text


async def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    """Let the loop run until `predicate()` holds (no timing assertions: only a safety cap)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=2) as simulator:
        yield simulator


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
async def client(sim: Simulator):
    c = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    yield c
    await c.close()


@pytest.fixture
async def widget(client: AsyncClient, store: RunStore):
    w = FramepackWidget(client, store=store)
    yield w
    await w.runner.aclose()
    w.close()


def ready(widget: FramepackWidget, prompt: str = "a red square, the camera slowly zooms in") -> Recorder:
    rec = attach(widget)
    widget.start_image = jpeg()
    widget.prompt = prompt
    return rec


# --------------------------------------------------------------------------- backend & badge
async def test_simulator_backend_is_labelled_synthetic(widget: FramepackWidget, sim: Simulator) -> None:
    assert widget.backend == "simulator"
    assert widget._backend_label == SIMULATOR_LABEL
    assert "synthetic" in widget._backend_label
    assert widget.balance == ""
    assert widget._cost_per_second == 0.03
    assert (widget._min_duration, widget._max_duration) == (10, 30)
    assert_clean_state(widget, sim.api_key)


async def test_piapi_backend_shows_balance_and_never_the_key(store: RunStore) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/account/info":
            return httpx.Response(200, json={"code": 200, "data": {"equivalent_in_usd": 12.5, "credits": 125000}})
        return httpx.Response(404, json={"code": 404, "message": "Record Not Found"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncClient(SECRET, base_url="https://api.piapi.ai", http_client=http)
    w = FramepackWidget(client, store=store)
    rec = attach(w)
    assert w.backend == "piapi"
    assert w._backend_label == "PiAPI"
    await wait_for(lambda: w.balance)  # fetched in the background, never blocking the widget
    assert w.balance == "$12.50"
    assert seen[0].headers["x-api-key"] == SECRET
    w.start_image = jpeg()
    w.prompt = "hello"
    assert_clean_state(w, SECRET)
    assert SECRET not in json.dumps([m for m, _ in rec.messages])
    assert SECRET not in repr(w)
    w.close()
    await http.aclose()


async def test_no_client_and_no_key_starts_the_embedded_simulator(store: RunStore, monkeypatch) -> None:
    monkeypatch.delenv("PIAPI_API_KEY", raising=False)
    w = FramepackWidget(store=store)
    try:
        assert w.backend == "simulator"
        assert "synthetic" in w._backend_label
        assert w.client.is_simulator
        assert_clean_state(w, w._sim.api_key)
    finally:
        w.close()


def test_the_widget_opens_outside_an_event_loop(store: RunStore) -> None:
    # A script (no running loop) can still build it and set inputs; generating needs the loop.
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    w = FramepackWidget(AsyncClient("k", base_url="http://127.0.0.1:9", http_client=http), store=store)
    w.start_image = jpeg()
    w.prompt = "x"
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        w.generate()
    assert store.count() == 0
    w.close()


def test_a_sync_client_is_refused_with_a_clear_message(store: RunStore) -> None:
    from framepack_widgets.client import Client

    with Client("k", base_url="http://127.0.0.1:9") as sync_client:
        with pytest.raises(TypeError, match="AsyncClient"):
            FramepackWidget(sync_client, store=store)


def test_the_frontend_files_are_found() -> None:
    # The built bundle (tests/test_frontend_build.py checks the build itself).
    esm = str(FramepackWidget._esm)
    css = str(FramepackWidget._css)
    assert "as default}" in esm and "data-lm-suppress-shortcuts" in esm
    assert ".fpw-root" in css


def test_only_traits_a_python_user_reads_are_public() -> None:
    """Traits only the frontend draws from are private (`_history`, `_limits`, ...): what Python
    code reads has its own door (`runs`, `compare()`, the Sweep and Timeline objects, exceptions)."""
    import anywidget

    own = set(FramepackWidget.class_traits(sync=True)) - set(anywidget.AnyWidget.class_traits(sync=True))
    public = {name for name in own if not name.startswith("_")}
    assert public == {"prompt", "negative_prompt", "duration", "loop", "selected", "status", "busy", "session_cost",
                      "backend", "balance"}


def test_every_synced_trait_says_its_type_default_and_what_is_drawn() -> None:
    import anywidget

    own = set(FramepackWidget.class_traits(sync=True)) - set(anywidget.AnyWidget.class_traits(sync=True))
    assert {"prompt", "status", "_history", "_comparison", "_timeline_info", "_queued"} <= own
    undocumented = sorted(name for name in own if "default" not in (FramepackWidget.class_traits()[name].help or ""))
    assert undocumented == []


# --------------------------------------------------------------------------- images
async def test_images_set_from_python_send_thumbnails_not_traits(widget: FramepackWidget, tmp_path: Path) -> None:
    import numpy as np

    rec = attach(widget)
    widget.start_image = Image.new("RGB", (2000, 1000), (10, 200, 30))
    info = widget._start_image_info
    assert (info["width"], info["height"]) == (1280, 640)  # normalised: long side 1280
    assert info["name"] == "PIL image"
    (content, buffers), = rec.of("image")
    assert content == {"type": "image", "slot": "start", "name": "PIL image", "mime": "image/jpeg"}
    thumb = Image.open(io.BytesIO(buffers[0]))
    assert max(thumb.size) <= 256
    path = tmp_path / "end frame.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(path)
    widget.end_image = path
    assert widget._end_image_info["name"] == "end frame.png"
    assert widget.end_image.width == 400
    widget.end_image = None
    assert widget._end_image_info is None
    assert rec.of("image")[-1][0] == {"type": "image", "slot": "end", "clear": True}
    assert_clean_state(widget)


async def test_browser_upload_arrives_as_a_buffer(widget: FramepackWidget) -> None:
    rec = attach(widget)
    data = jpeg(size=(1280, 960))
    msg(widget, {"type": "upload", "slot": "start", "name": "holiday.jpg", "mime": "image/jpeg", "size": 5_000_000}, [data])
    assert widget.start_image is not None
    assert widget._start_image_info == {"name": "holiday.jpg", "width": 1280, "height": 960, "size": 5_000_000}
    assert rec.of("image")[0][0]["slot"] == "start"
    # A second view appears: it asks for the thumbnails again, and is always answered.
    msg(widget, {"type": "hello"})
    assert len(rec.of("image")) == 2
    assert len(rec.of("hello")) == 1


async def test_a_bad_upload_is_explained_and_changes_nothing(widget: FramepackWidget) -> None:
    rec = attach(widget)
    msg(widget, {"type": "upload", "slot": "end", "name": "notes.txt", "mime": "text/plain"}, [b"just text, no image"])
    assert widget.end_image is None
    assert widget._input_error
    (error, _), = rec.of("error")
    assert error["slot"] == "end" and error["message"] == widget._input_error
    msg(widget, {"type": "upload", "slot": "middle", "name": "x.jpg"}, [jpeg()])
    message = rec.of("error")[-1][0]["message"]
    assert "'middle'" in message and "start and end" in message and "went wrong" not in message


async def test_image_urls_pass_through_and_other_schemes_are_refused(widget: FramepackWidget) -> None:
    rec = attach(widget)
    msg(widget, {"type": "image_url", "slot": "start", "url": "https://example.com/cat.png"})
    assert widget.start_image.url == "https://example.com/cat.png"
    assert widget._start_image_info["url"] == "https://example.com/cat.png"
    assert rec.of("image")[-1][0]["url"] == "https://example.com/cat.png"
    msg(widget, {"type": "image_url", "slot": "end", "url": "javascript:alert(1)"})
    assert widget.end_image is None
    assert "http" in rec.of("error")[-1][0]["message"]
    msg(widget, {"type": "clear_image", "slot": "start"})
    assert widget.start_image is None and widget._start_image_info is None


# --------------------------------------------------------------------------- generate
async def test_generate_needs_a_start_image_and_a_prompt(widget: FramepackWidget, store: RunStore) -> None:
    rec = attach(widget)
    widget.prompt = "zoom in"
    with pytest.raises(InvalidInputError, match="start image"):
        widget.generate()
    assert "start image" in widget._input_error
    widget.start_image = jpeg()
    assert widget._input_error == ""
    widget.prompt = "   "
    msg(widget, {"type": "generate", "request_id": "r-1"})
    (error, _), = rec.of("error")
    assert error["request_id"] == "r-1"
    assert "prompt" in error["message"].lower()
    assert widget._input_error == error["message"]
    assert store.count() == 0
    with pytest.raises(TraitError, match="10 to 30"):
        widget.duration = 31
    assert widget.duration == 10


async def test_a_double_click_makes_one_task(widget: FramepackWidget, store: RunStore, sim: Simulator) -> None:
    rec = ready(widget)
    creates_before = sim.count("create")
    request = {"type": "generate", "request_id": "view1-abc", "prompt": "the camera pans left", "duration": 12}
    msg(widget, request)
    msg(widget, request)  # the same click delivered twice
    msg(widget, {**request, "request_id": "view1-def"})  # a second click while the first is in flight
    assert store.count() == 1
    (ack, _), = rec.of("generated")
    assert ack["request_id"] == "view1-abc"
    assert [e["request_id"] for e, _ in rec.of("error")] == ["view1-def"]
    assert widget.prompt == "the camera pans left" and widget.duration == 12
    run = widget.runs[-1]
    await run
    assert sim.count("create") - creates_before == 1
    assert run.input.duration == 12


async def test_two_quick_generate_calls_from_python_make_one_task(
    widget: FramepackWidget, store: RunStore, sim: Simulator
) -> None:
    ready(widget)
    creates_before = sim.count("create")
    first = widget.generate()
    again = widget.generate()  # while the first is still being submitted, same inputs
    assert again is first and store.count() == 1
    widget.prompt = "a different prompt"
    other = widget.generate()  # different inputs: a new intent, a new run
    assert other is not first
    await first
    await other
    third = widget.generate()  # the first was accepted long ago: a new run again
    assert third is not other
    await third
    assert sim.count("create") - creates_before == 3


async def test_generate_end_to_end_streams_status_and_delivers_the_video(widget: FramepackWidget) -> None:
    rec = ready(widget)
    stages: list[str] = []
    widget.observe(lambda change: stages.append(change["new"].get("stage")), names=["status"])
    busy: list[bool] = []
    widget.observe(lambda change: busy.append(change["new"]), names=["busy"])
    run = widget.generate()
    assert isinstance(run, Run)
    assert widget.status["run_id"] == run.run_id
    assert widget.status["running"] is True
    assert widget._history[0]["id"] == run.run_id
    result = await run
    assert result is run
    assert run.stage is RunStage.COMPLETED
    assert run.video_path is not None and Path(run.video_path).is_file()
    # Status streamed through the stages while the loop (the kernel) was free.
    assert stages[0] in ("queued", "submitting")
    assert "processing" in stages and stages[-1] == "completed"
    assert busy[0] is True and busy[-1] is False
    status = widget.status
    assert status["stage"] == "completed" and status["has_video"] and status["percent"] == 100
    assert status["running"] is False and status["elapsed"] > 0
    card = widget._history[0]
    assert card["stage"] == "completed" and card["has_video"] and card["cost"] == 0.3 and card["wall"] is not None
    assert widget.session_cost == 0.3
    # The view asks for the video: it arrives as buffers, reassembling to the file.
    msg(widget, {"type": "video", "run_id": run.run_id, "nonce": "v1"})
    chunks = rec.of("video")
    assert chunks and all(len(b[0]) <= proto.CHUNK_BYTES for _, b in chunks)
    assert [c["index"] for c, _ in chunks] == list(range(chunks[0][0]["count"]))
    assert all(c["nonce"] == "v1" and c["run_id"] == run.run_id for c, _ in chunks)
    assert b"".join(b[0] for _, b in chunks) == Path(run.video_path).read_bytes()
    msg(widget, {"type": "posters", "run_ids": [run.run_id, "no-such-run"]})
    (poster, buffers), = rec.of("poster")
    assert poster["run_id"] == run.run_id
    assert Image.open(io.BytesIO(buffers[0])).format == "JPEG"
    msg(widget, {"type": "video", "run_id": "no-such-run"})
    assert rec.of("video_error")[0][0]["run_id"] == "no-such-run"
    assert_clean_state(widget)


async def test_video_chunks_stay_under_the_message_limit(widget: FramepackWidget, tmp_path: Path) -> None:
    assert proto.chunks(b"") == [b""]
    data = bytes(range(256)) * 5000  # 1.28 MB
    parts = proto.chunks(data)
    assert len(parts) == 3 and b"".join(parts) == data and max(map(len, parts)) <= proto.CHUNK_BYTES


async def test_cancel_from_the_browser(widget: FramepackWidget) -> None:
    ready(widget, "cancel me")
    widget.duration = 30
    run = widget.generate()
    await wait_for(lambda: run.task_id is not None)
    msg(widget, {"type": "cancel", "run_id": run.run_id})
    await run
    assert run.stage is RunStage.CANCELLED
    assert widget.status["stage"] == "cancelled" and widget.status["running"] is False
    assert widget.status["hint"]


async def test_show_switches_the_current_run(widget: FramepackWidget) -> None:
    ready(widget)
    first = widget.generate()
    await first
    widget.prompt = "second"
    second = widget.generate()
    assert widget.status["run_id"] == second.run_id
    msg(widget, {"type": "show", "run_id": first.run_id})
    assert widget.status["run_id"] == first.run_id and widget.status["stage"] == "completed"
    await second
    assert widget.status["run_id"] == first.run_id, "a background run does not steal the view"


# --------------------------------------------------------------------------- comparison
async def test_compare_two_runs_with_a_word_diff(widget: FramepackWidget) -> None:
    rec = ready(widget, "a red square, the camera zooms in")
    a = widget.generate()
    widget.prompt = "a red square, the camera slowly zooms out"
    widget.duration = 11
    b = widget.generate()
    await asyncio.gather(a, b)
    widget.compare(a, b.run_id)
    cmp = widget._comparison
    assert cmp["run_ids"] == [a.run_id, b.run_id]
    assert widget.selected == [a.run_id, b.run_id]
    assert cmp["differs"] == {"prompt": True, "negative_prompt": False, "duration": True, "start_image": False, "end_image": False}
    first, second = cmp["items"]
    assert first["prompt"] == [["=", "a red square, the camera zooms in"]]
    assert ["+", "slowly"] in second["prompt"]
    assert ["-", "in"] in second["prompt"] and ["+", "out"] in second["prompt"]
    assert second["duration"] == 11 and (first["label"], second["label"]) == (f"#{a.seq}", f"#{b.seq}")
    assert second["caption"]
    with pytest.raises(ValueError, match="2 to 4"):
        widget.compare(a)
    msg(widget, {"type": "compare", "run_ids": [a.run_id, "nope"]})
    assert "nope" in rec.of("error")[-1][0]["message"]
    msg(widget, {"type": "compare", "run_ids": []})
    assert widget._comparison == {}
    msg(widget, {"type": "compare", "run_ids": [b.run_id, a.run_id]})
    assert widget._comparison["run_ids"] == [b.run_id, a.run_id]
    out = widget.export_comparison()
    assert out.is_file() and out.suffix == ".mp4"
    msg(widget, {"type": "export", "what": "comparison"})
    await wait_for(lambda: rec.of("download"))
    download = rec.of("download")
    assert download[0][0]["mime"] == "video/mp4"
    # The button that asked hears the file's name (no folder); the notice at the top stays quiet.
    (exported, _), = rec.of("exported")
    assert exported == {"type": "exported", "what": "comparison", "name": download[0][0]["name"]}
    assert exported["name"].endswith(".mp4") and "/" not in exported["name"]
    assert widget._notice == ""
    assert_clean_state(widget)


def test_word_diff_ignores_case_and_punctuation() -> None:
    assert diff_ops("A cat walks.", "a cat walks slowly") == [["=", "a cat walks"], ["+", "slowly"]]
    assert diff_ops("zoom in", "") == [["-", "zoom in"]]


# --------------------------------------------------------------------------- history, resume, state size
def _stored_runs(store: RunStore, n: int) -> list[Run]:
    inp = FramepackInput("stored prompt", jpeg(), duration=10)
    store.put_image(inp.start_image)
    runs = []
    for i in range(n):
        run = Run.from_input(inp.replace(prompt=f"stored prompt {i}"), backend="simulator")
        run.update(stage=RunStage.FAILED, error="old")
        store.save(run)
        runs.append(run)
    return runs


async def test_history_shows_the_latest_50_and_pages_older_ones(client: AsyncClient, store: RunStore) -> None:
    _stored_runs(store, 60)
    w = FramepackWidget(client, store=store)
    rec = attach(w)
    assert len(w._history) == proto.HISTORY_LIMIT
    assert w._history_total == 60
    assert w._history[0]["prompt"] == "stored prompt 59"
    assert w.status == {}, "a widget opens on its own inputs (Ready), not on a stored run"
    msg(w, {"type": "history", "before": w._history[-1]["seq"]})
    (page, _), = rec.of("history_page")
    assert [c["prompt"] for c in page["runs"]] == [f"stored prompt {i}" for i in range(9, -1, -1)]
    assert page["total"] == 60
    assert len(json.dumps(w._history)) < 30_000
    w.close()


#: Texts from inside Python that no message to a person may hold.
PYTHON_TEXTS = ("went wrong in the kernel", "invalid literal", "int()", "unhashable", "not iterable", "Traceback",
                "too large to convert")


@pytest.mark.parametrize("asked, answer", [
    ({"offset": "x"}, "not a whole number"),
    ({"offset": 2.5}, "not a whole number"),
    ({"offset": [1]}, "not a whole number"),
    ({"offset": True}, "not a whole number"),
    ({"before": "x"}, "not a whole number"),
    ({"before": 1.5}, "not a whole number"),
    ({"before": None, "offset": {}}, "not a whole number"),
    ({"offset": -5}, 10),  # before the first: the first page
    ({"offset": 10**30}, 0),  # past the last: nothing older
    ({"offset": 2**63}, 0),
    ({"before": 10**30}, 10),  # older than anything stored: from the newest
    ({"before": -3}, 0),
    ({"before": 0}, 0),
])
async def test_a_bad_history_page_request_is_answered_plainly(
    client: AsyncClient, store: RunStore, asked: dict, answer: Any
) -> None:
    """The "Older runs" button asks for a page by `before` (a card's seq) or `offset`: a page
    out of range is an empty (or the first) page; something that is not a whole number gets a
    message a person can act on, never a Python error text, and no page of wrong cards."""
    _stored_runs(store, 10)
    w = FramepackWidget(client, store=store)
    rec = attach(w)
    msg(w, {"type": "history", **asked})
    errors = [m["message"] for m, _ in rec.of("error")]
    pages = [m for m, _ in rec.of("history_page")]
    if isinstance(answer, int):
        assert errors == [] and len(pages) == 1 and len(pages[0]["runs"]) == answer and pages[0]["total"] == 10
    else:
        assert pages == [] and len(errors) == 1
        assert answer in errors[0] and "older runs" in errors[0] and "Reload" in errors[0]
        assert not any(t.lower() in errors[0].lower() for t in PYTHON_TEXTS), errors[0]
    w.close()


async def test_unfinished_runs_are_resumed_when_the_widget_opens(client: AsyncClient, store: RunStore) -> None:
    # A run whose task was created before "the kernel died": stored PENDING with its task id.
    inp = FramepackInput("resume me", jpeg(), duration=10)
    task = await client.create_task(inp)
    store.put_image(inp.start_image)
    run = Run.from_input(inp, backend="simulator")
    run.update(task_id=task.task_id, stage=RunStage.PENDING)
    store.save(run)
    w = FramepackWidget(client, store=store)
    assert w.status["run_id"] == run.run_id
    await wait_for(lambda: w.status.get("stage") == "completed")
    assert w._history[0]["has_video"]
    assert w.session_cost == 0.0, "a run from an earlier session is not counted again"
    w.close()


@pytest.mark.slow
async def test_ten_runs_keep_the_saved_widget_state_small(widget: FramepackWidget, sim: Simulator) -> None:
    ready(widget)
    empty = len(json.dumps(synced_state(widget)))
    runs = []
    for i in range(10):
        widget.prompt = f"run number {i}: the camera slowly zooms in on the red square " * 3
        runs.append(widget.generate())
        await wait_for(lambda: not widget.busy)
    await asyncio.gather(*runs)
    widget.compare(*runs[:4])
    text = assert_clean_state(widget, sim.api_key)
    full = len(json.dumps(widget.get_state()))
    assert len(text) - empty < 100_000
    assert full - empty < 100_000
    assert widget.session_cost == 3.0


# --------------------------------------------------------------------------- sweeps
async def test_a_sweep_waits_for_confirmation_then_opens_the_comparison(widget: FramepackWidget, store: RunStore) -> None:
    ready(widget)
    sweep = widget.sweep(prompt=["zoom in", "pan left"], max_cost=1.0)
    info = widget._sweep_info
    assert info["state"] == "pending" and info["count"] == 2 and info["total_cost_usd"] == 0.6
    assert store.count() == 0, "nothing starts before confirmation"
    with pytest.raises(InvalidInputError):
        widget.sweep(prompt=["a", "b", "c"], duration=[30], max_cost=1.0)
    msg(widget, {"type": "sweep", "action": "confirm", "sweep_id": sweep.sweep_id})
    msg(widget, {"type": "sweep", "action": "confirm", "sweep_id": sweep.sweep_id})  # double click
    assert store.count() == 2
    await sweep
    await wait_for(lambda: widget._sweep_info.get("state") == "done")
    assert sorted(widget._comparison["run_ids"]) == sorted(r.run_id for r in sweep.runs)
    assert all(c.get("sweep_id") == sweep.sweep_id for c in widget._history[:2])


async def test_a_pending_sweep_can_be_discarded(widget: FramepackWidget, store: RunStore) -> None:
    ready(widget)
    sweep = widget.sweep(duration=[10, 20])
    msg(widget, {"type": "sweep", "action": "cancel", "sweep_id": sweep.sweep_id})
    assert widget._sweep_info == {}
    assert store.count() == 0


@pytest.mark.parametrize("axis", ["prompt", "negative_prompt", "start_image", "all"])
async def test_a_sweep_that_gives_an_axis_needs_no_value_for_it_in_the_widget(
    widget: FramepackWidget, store: RunStore, axis: str
) -> None:
    """`w.sweep(prompt=[...])` plans with those prompts whatever the Prompt box holds (empty,
    too long...); the same for every axis: only what the sweep does not give comes from the
    widget, and must be valid there."""
    widget.prompt = "" if axis in ("prompt", "all") else "a red square"
    widget.negative_prompt = "x" * 2001 if axis in ("negative_prompt", "all") else ""
    widget.start_image = None if axis in ("start_image", "all") else jpeg()
    given = {
        "prompt": {"prompt": ["zoom in", "pan left"]},
        "negative_prompt": {"negative_prompt": ["", "blurry"]},
        "start_image": {"start_image": [jpeg((10, 200, 10)), jpeg((200, 10, 10))]},
        "all": {"prompt": ["zoom in"], "negative_prompt": ["blurry"], "start_image": [jpeg()], "duration": [10, 20],
                "end_image": [None, jpeg((0, 0, 0))]},
    }[axis]
    sweep = widget.sweep(**given)
    assert sweep.count == {"prompt": 2, "negative_prompt": 2, "start_image": 2, "all": 4}[axis]
    entries = sweep.plan.inputs
    if axis in ("prompt", "all"):
        assert {e.prompt for e in entries} <= {"zoom in", "pan left"}
    if axis in ("negative_prompt", "all"):
        assert {e.negative_prompt for e in entries} <= {"", "blurry"}
    assert widget._sweep_info["state"] == "pending" and store.count() == 0


async def test_a_sweep_still_needs_what_it_does_not_give(widget: FramepackWidget) -> None:
    widget.start_image, widget.prompt = jpeg(), ""
    with pytest.raises(InvalidInputError, match="prompt"):
        widget.sweep(duration=[10, 20])
    with pytest.raises(InvalidInputError, match="Sweep entry 1 .*prompt"):
        widget.sweep(prompt=["", "pan left"])  # a bad value of the sweep's own is named by its entry
    widget.prompt, widget.negative_prompt = "a red square", "x\x00"
    with pytest.raises(InvalidInputError, match="negative prompt"):
        widget.sweep(prompt=["zoom in"])


# --------------------------------------------------------------------------- protocol details
def test_unknown_messages_are_ignored(store: RunStore) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    w = FramepackWidget(AsyncClient("k", base_url="http://127.0.0.1:9", http_client=http), store=store)
    rec = attach(w)
    for content in ({"type": "__class__"}, {"type": "no_such"}, {"nothing": 1}, "text", {"type": None}):
        w._handle_custom_msg(content, [])
    assert rec.messages == []
    w.close()


def test_balance_formats() -> None:
    assert proto.format_balance({"code": 200, "data": {"equivalent_in_usd": 3}}) == "$3.00"
    assert proto.format_balance({"credits": "1200"}) == "1,200 credits"
    assert proto.format_balance({"data": {"something": "else"}}) == ""
    assert proto.format_balance(None) == ""


# --------------------------------------------------------------------------- a real kernel
@pytest.mark.slow
def test_in_a_real_kernel_status_streams_while_the_kernel_is_idle(tmp_path: Path) -> None:
    """A Generate message over the comm, as JupyterLab sends it: the handler returns at once
    (the kernel goes idle) and the status updates keep arriving afterwards."""
    import os
    import queue
    import time

    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "FRAMEPACK_HOME": str(tmp_path / "home"), "FRAMEPACK_SIM_TIME_SCALE": "40"}
    env.pop("PIAPI_API_KEY", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        setup = (
            "from PIL import Image\nfrom framepack_widgets import FramepackWidget\n"
            "w = FramepackWidget()\nw.start_image = Image.new('RGB', (640, 480), (200, 30, 30))\n"
            "w.prompt = 'zoom in'\nprint(w.comm.comm_id)\n"
        )
        out: list[str] = []
        reply = kc.execute_interactive(
            setup, timeout=120,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        comm_id = "".join(out).split()[-1]
        request = kc.session.msg("comm_msg", content={
            "comm_id": comm_id, "data": {"method": "custom", "content": {"type": "generate", "request_id": "k-1"}},
        })
        kc.shell_channel.send(request)
        idle = False
        updates_after_idle: list[str] = []
        acks: list[dict] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                m = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            parent = m.get("parent_header", {}).get("msg_id")
            if m["msg_type"] == "status" and parent == request["header"]["msg_id"]:
                idle = idle or m["content"]["execution_state"] == "idle"
            if m["msg_type"] != "comm_msg":
                continue
            data = m["content"]["data"]
            if data.get("method") == "custom":
                acks.append(data["content"])
            stage = data.get("state", {}).get("status", {}).get("stage") if data.get("method") == "update" else None
            if stage and idle:
                updates_after_idle.append(stage)
            if stage in ("completed", "failed", "error"):
                break
        assert [a for a in acks if a.get("type") == "generated"], acks
        assert "processing" in updates_after_idle, updates_after_idle
        assert updates_after_idle[-1] == "completed", updates_after_idle
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


async def test_runs_left_unsent_by_a_stopped_kernel_wait_for_send_or_discard(
    client: AsyncClient, store: RunStore, sim: Simulator
) -> None:
    import subprocess
    import sys

    from framepack_widgets.runs.ownership import HOST

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{HOST}:{gone.pid}:gone"  # the kernel that stored them has stopped
    inp = FramepackInput("left queued", jpeg(), duration=10)
    store.put_image(inp.start_image)
    left = [Run.from_input(inp.replace(prompt=f"left queued {i}"), backend="simulator") for i in range(3)]
    for run in left:
        store.save(run, owner=dead)
    creates = sim.count("create")
    w = FramepackWidget(client, store=store)
    assert w._queued["count"] == 3 and w._queued["cost_usd"] == 0.9
    assert "3 queued runs, $0.90" in w._queued["text"]
    await asyncio.sleep(0.2)
    assert sim.count("create") == creates, "nothing is sent before the person says so"
    msg(w, {"type": "queued", "action": "discard"})
    assert w._queued == {}
    assert {store.get(r.run_id).stage for r in left} == {RunStage.CANCELLED}
    assert sim.count("create") == creates
    w.close()

    more = Run.from_input(inp.replace(prompt="left queued again"), backend="simulator")
    store.save(more, owner=dead)
    w = FramepackWidget(client, store=store)
    assert w._queued["count"] == 1
    [sent] = w.send_queued()
    await sent
    assert sent.stage is RunStage.COMPLETED and sim.count("create") == creates + 1 and w._queued == {}
    w.close()
