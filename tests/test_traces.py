"""The replay traces every release must parse (`tests/traces/`), and the simulator replaying them.

The folder starts with traces written from PiAPI's documented examples (each names its page
in "source"); traces users attach to bug reports (`framepack record`) join it. Every one
is served to the real client (over MockTransport, and again through `Simulator(replay=)`),
and the client must conclude what its "expect" says; a trace without "expect" must at
least never crash the client.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from framepack_widgets.client import Client
from framepack_widgets.errors import FramepackError, TaskFailedError
from framepack_widgets.simulator import Simulator, TraceError, load_trace
from framepack_widgets.task import Task, parse_time

FOLDER = Path(__file__).parent / "traces"
TRACES = sorted(FOLDER.glob("*.json"))
KEY = "sk-trace-test-key"


def _ids(path: Path) -> str:
    return path.stem


class TraceServer:
    """A trace's answers over MockTransport: the create reply, then each GET's, in order."""

    def __init__(self, path: Path) -> None:
        self.trace = load_trace(path)
        self.gets = 0

    def _reply(self, call: str, index: int) -> httpx.Response:
        recorded = self.trace.of(call)
        exchange = recorded[min(index, len(recorded) - 1)]
        if exchange.body is None:
            return httpx.Response(exchange.status, text=exchange.text or "")
        return httpx.Response(exchange.status, json=exchange.body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return self._reply("create", 0)
        self.gets += 1
        return self._reply("get", self.gets - 1)


def _run(client: Client) -> "Task | FramepackError":
    try:
        task = client.create_task({"prompt": "zoom in", "start_image": "https://example.com/a.png", "duration": 10})
        return client.wait(task, timeout=3600)
    except FramepackError as exc:
        return exc


def _check_expected(result: "Task | FramepackError", expect: dict[str, Any], *, replayed: bool = False) -> None:
    if expect.get("status") == "failed":
        assert isinstance(result, TaskFailedError), result
        assert expect["error"] in str(result)
        return
    assert isinstance(result, Task), result
    assert result.status.value == expect["status"]
    if "video_url" in expect and not replayed:  # a replay points every URL at its own video
        assert result.video_url == expect["video_url"]
    if "status_word" in expect:
        assert result.status_word == expect["status_word"]
    if "ended_at" in expect:
        assert result.ended_at == parse_time(expect["ended_at"])
    if "consume" in expect:
        assert result.consume == expect["consume"]


def test_the_folder_has_the_documented_traces_and_each_names_its_page() -> None:
    assert len(TRACES) >= 8
    for path in TRACES:
        trace = load_trace(path)
        assert trace.source.startswith(("https://piapi.ai/docs/", "recorded by framepack record")), path.name
        assert trace.raw.get("note") or trace.outcome, f"{path.name}: say what the trace shows"


@pytest.mark.parametrize("path", TRACES, ids=_ids)
def test_every_trace_parses_and_the_client_concludes_what_it_expects(path: Path) -> None:
    server = TraceServer(path)
    client = Client(KEY, http_client=httpx.Client(transport=httpx.MockTransport(server)))
    client._sleep = lambda seconds: None  # virtual time: a trace's minutes take no time
    result = _run(client)
    if server.trace.expect is not None:
        _check_expected(result, dict(server.trace.expect))
    else:  # a user's trace: whatever it shows, the client ends with a result or one of its own errors
        assert isinstance(result, (Task, FramepackError))


@pytest.fixture(scope="module")
def start_image() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (40, 120, 220)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("path", TRACES, ids=_ids)
def test_every_trace_replays_through_the_simulator(path: Path, start_image: str, tmp_path: Path) -> None:
    trace = load_trace(path)
    with Simulator(replay=path, long_side=96, render_workers=1) as sim:
        with Client(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
            task = client.create_task({"prompt": "zoom in", "start_image": start_image, "duration": 10})
            assert task.task_id == trace.task_id
            try:
                result: Task | FramepackError = client.wait(task, timeout=60)
            except FramepackError as exc:
                result = exc
            if trace.expect is not None:
                _check_expected(result, dict(trace.expect), replayed=True)
            if isinstance(result, Task) and result.video_url:
                video = client.download(result, tmp_path / "replayed.mp4")
                assert video.read_bytes()[4:8] == b"ftyp"
        assert sim.count("get") >= 1


def test_a_second_create_replays_again_under_its_own_id(start_image: str) -> None:
    path = FOLDER / "kling-works-video.json"
    with Simulator(replay=path, long_side=96) as sim, Client(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
        first = client.create_task({"prompt": "zoom in", "start_image": start_image, "duration": 10})
        second = client.create_task({"prompt": "zoom in", "start_image": start_image, "duration": 10})
        assert first.task_id != second.task_id and second.task_id.startswith(first.task_id)
        assert client.wait(second, timeout=60).video_url.endswith("/files/replay-1.mp4")
        assert client.wait(first, timeout=60).video_url.endswith("/files/replay-0.mp4")
        assert httpx.get(f"{sim.base_url}/api/v1/task/nope", headers={"x-api-key": sim.api_key}).status_code == 404


@pytest.mark.parametrize(
    "broken, words",
    [
        ({"format": "something else"}, "not a framepack trace"),
        ({"format": "framepack-trace", "version": 99, "source": "x", "exchanges": []}, "version 99"),
        ({"format": "framepack-trace", "version": 1, "exchanges": [{"call": "get", "status": 200}]}, "source"),
        ({"format": "framepack-trace", "version": 1, "source": "x", "exchanges": []}, "no exchanges"),
        ({"format": "framepack-trace", "version": 1, "source": "x", "exchanges": [{"call": "fly", "status": 200}]},
         "call 'fly'"),
        ({"format": "framepack-trace", "version": 1, "source": "x", "exchanges": [{"call": "get", "status": 42}]},
         "not an HTTP status"),
        ({"format": "framepack-trace", "version": 1, "source": "x", "exchanges": [{"call": "account", "status": 200}]},
         "neither a create nor a get"),
    ],
)
def test_a_broken_trace_says_what_is_wrong(broken: dict, words: str, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=words):
        load_trace(broken)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(TraceError, match=words):
        Simulator(replay=path)
    path.write_text("{not json")
    with pytest.raises(TraceError, match="not a JSON trace"):
        load_trace(path)
    with pytest.raises(TraceError, match="no trace at"):
        load_trace(tmp_path / "missing.json")


# --------------------------------------------------------------------------- issue 18: hostile traces
def _hostile_trace(**changes: Any) -> dict:
    done = {"code": 200, "message": "success", "data": {
        "task_id": "t-hostile", "status": "completed", "output": {"video_url": "https://evil.example/v.mp4"},
        "logs": ["fetched https://evil.example/other.mp4"]}}
    trace = {"format": "framepack-trace", "version": 1, "source": "a hostile trace",
             "request": {"input": {"duration": 10}},
             "exchanges": [{"t": 0, "call": "create", "status": 200, "text": json.dumps(
                               {"code": 200, "data": {"task_id": "t-hostile", "status": "pending"}})},
                           {"t": 1, "call": "get", "status": 200, "text": json.dumps(done)}]}
    trace.update(changes)
    return trace


def test_a_trace_whose_text_holds_json_still_points_every_url_at_the_simulator(start_image: str,
                                                                               tmp_path: Path) -> None:
    with Simulator(replay=_hostile_trace(), long_side=64, render_workers=1) as sim:
        with Client(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
            task = client.wait(client.create_task({"prompt": "zoom in", "start_image": start_image}), timeout=60)
            assert task.video_url.startswith(sim.base_url), task.video_url
            assert "evil.example" not in json.dumps(task.raw) + " ".join(task.logs)
            assert client.download(task, tmp_path / "v.mp4").read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("asked, clamped", [(10**8, 30), (1, 10), (45, 30), (20, 20)])
def test_a_trace_asking_for_an_absurd_duration_is_clamped(asked: int, clamped: int) -> None:
    assert load_trace(_hostile_trace(request={"input": {"duration": asked}})).duration == clamped


def test_a_deeply_nested_trace_is_a_trace_error_naming_the_file(tmp_path: Path) -> None:
    from framepack_widgets.errors import FramepackError as Base

    path = tmp_path / "deep.trace.json"
    trace = json.dumps(_hostile_trace())
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(trace[:-1] + f', "note": {deep}}}')
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert str(path) in str(info.value) and "nested" in str(info.value)
    assert isinstance(info.value, Base) and isinstance(info.value, ValueError)
    nested: Any = {}
    for _ in range(5000):
        nested = {"a": nested}
    with pytest.raises(TraceError, match="nested"):
        load_trace(_hostile_trace(exchanges=[{"t": 0, "call": "get", "status": 200, "body": nested}]))
