"""The bad-input table: across the Python API, the widget's browser messages, the CLI, the
environment and the store, every bad input gets a typed error that names what is wrong and
what to do, shows no traceback from inside a dependency, and sends no request.

A case is (what is wrong, the words the message must hold). The words name the field and
the fix; a request counter (a mock transport, or the simulator) must stay at zero.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from framepack_widgets.errors import FramepackError, InvalidInputError
from framepack_widgets.inputs import FramepackInput


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


JPG = _jpeg()
URL = "https://example.com/start.png"


def _shown_chain(exc: BaseException) -> list[BaseException]:
    """The exceptions a traceback would show, newest first."""
    chain = [exc]
    while True:
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None:
            return chain
        chain.append(nxt)
        exc = nxt


def assert_explained(exc: BaseException, words: tuple[str, ...]) -> None:
    text = str(exc)
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in {text!r}"
    for shown in _shown_chain(exc):
        module = type(shown).__module__
        assert module.startswith("framepack_widgets") or isinstance(shown, (InvalidInputError, FramepackError)), (
            f"a traceback would show {type(shown).__name__} from {module}: {shown}"
        )


# --------------------------------------------------------------------------- the Python API: inputs
INPUTS: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {
    "empty prompt": (lambda: FramepackInput("", JPG), ("prompt", "describe")),
    "blank prompt": (lambda: FramepackInput("   \n ", JPG), ("prompt", "describe")),
    "prompt not text": (lambda: FramepackInput(5, JPG), ("prompt", "text")),  # type: ignore[arg-type]
    "prompt too long": (lambda: FramepackInput("x" * 2001, JPG), ("prompt", "2000", "shorten")),
    "prompt with a NUL": (lambda: FramepackInput("a\x00b", JPG), ("prompt", "control character", "remove")),
    "negative prompt too long": (
        lambda: FramepackInput("a", JPG, negative_prompt="x" * 2001), ("negative prompt", "shorten")),
    "negative prompt not text": (
        lambda: FramepackInput("a", JPG, negative_prompt=3), ("negative prompt", "text")),  # type: ignore[arg-type]
    "duration 9": (lambda: FramepackInput("a", JPG, duration=9), ("duration", "10 to 30")),
    "duration 31": (lambda: FramepackInput("a", JPG, duration=31), ("duration", "10 to 30")),
    "duration 10.5": (lambda: FramepackInput("a", JPG, duration=10.5), ("duration", "whole")),  # type: ignore[arg-type]
    "duration 'ten'": (lambda: FramepackInput("a", JPG, duration="ten"), ("duration", "number")),  # type: ignore[arg-type]
    "duration True": (lambda: FramepackInput("a", JPG, duration=True), ("duration", "number")),
    "duration None": (lambda: FramepackInput("a", JPG, duration=None), ("duration", "number")),  # type: ignore[arg-type]
    "no start image": (lambda: FramepackInput("a", None), ("start image", "required")),  # type: ignore[arg-type]
    "missing file": (lambda: FramepackInput("a", "/nope/x.jpg"), ("start image", "no such file", "path")),
    "a folder": (lambda: FramepackInput("a", "/tmp"), ("start image", "folder", "file")),
    "empty bytes": (lambda: FramepackInput("a", b""), ("start image", "empty")),
    "text bytes": (lambda: FramepackInput("a", b"hello, this is text"), ("start image", "not an image", "JPEG")),
    "truncated JPEG": (lambda: FramepackInput("a", JPG[:100]), ("start image", "truncated", "re-")),
    "ftp URL": (lambda: FramepackInput("a", "ftp://x/y.png"), ("start image", "ftp", "http")),
    "javascript: URL": (lambda: FramepackInput("a", "javascript:alert(1)"), ("start image", "javascript", "http")),
    "URL with a space": (lambda: FramepackInput("a", "http://exa mple.com/x.png"), ("URL", "spaces", "%20")),
    "URL without a host": (lambda: FramepackInput("a", "http:///x.png"), ("URL", "host")),
    "bad base64 data: URI": (lambda: FramepackInput("a", "data:image/png;base64,@@@@"), ("data: URI", "base64")),
    "empty data: URI": (lambda: FramepackInput("a", "data:image/png;base64,"), ("data: URI", "nothing")),
    "complex array": (lambda: FramepackInput("a", np.zeros((4, 4, 3), np.complex64)), ("start image", "dtype", "uint8")),
    "1-D array": (lambda: FramepackInput("a", np.zeros((4,), np.uint8)), ("start image", "shape", "height")),
    "5-channel array": (lambda: FramepackInput("a", np.zeros((4, 4, 5), np.uint8)), ("start image", "shape")),
    "an int as image": (lambda: FramepackInput("a", 42), ("start image", "file path")),  # type: ignore[arg-type]
    "bad end image": (lambda: FramepackInput("a", JPG, end_image=b"xx"), ("end image",)),
    "max_side 0": (lambda: FramepackInput("a", JPG, max_side=0), ("max_side", "64 to 8192")),
    "max_side huge": (lambda: FramepackInput("a", JPG, max_side=10**6), ("max_side", "64 to 8192")),
    "image_encoding 'hex'": (lambda: FramepackInput("a", JPG, image_encoding="hex"), ("image_encoding", "base64")),
    "replace(seed=)": (lambda: FramepackInput("a", JPG).replace(seed=3), ("seed", "has prompt")),
}


@pytest.mark.parametrize("case", sorted(INPUTS))
def test_bad_inputs_to_framepackinput(case: str) -> None:
    make, words = INPUTS[case]
    with pytest.raises(InvalidInputError) as info:
        make()
    assert_explained(info.value, words)


# --------------------------------------------------------------------------- the Python API: the client
class Counting:
    """A mock transport that counts requests (none may be sent) and fails them all."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(500)


def _client(**kwargs: Any) -> Any:
    from framepack_widgets.client import Client

    return Client(**{"api_key": "k", "base_url": "https://api.example.com", **kwargs})


CLIENT: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = {
    "api_key not text": (lambda c: _client(api_key=5), ("api_key", "string")),
    "ftp base_url": (lambda c: _client(base_url="ftp://x"), ("base_url", "http")),
    "timeout -1": (lambda c: _client(timeout=-1), ("timeout", "positive")),
    "timeout 'x'": (lambda c: _client(timeout="x"), ("timeout", "positive")),
    "max_retries -1": (lambda c: _client(max_retries=-1), ("max_retries", ">= 0")),
    "max_retries 1.5": (lambda c: _client(max_retries=1.5), ("max_retries", "whole")),
    "create_task(123)": (lambda c: c.create_task(123), ("create_task", "FramepackInput")),
    "dict input without prompt": (lambda c: c.create_task({"start_image": URL}), ("prompt",)),
    "dict input without image": (lambda c: c.create_task({"prompt": "a"}), ("start_image",)),
    "dict input, duration 9": (
        lambda c: c.create_task({"prompt": "a", "start_image": URL, "duration": 9}), ("duration", "10 to 30")),
    "get_task('')": (lambda c: c.get_task(""), ("task id",)),
    "wait(None)": (lambda c: c.wait(None), ("wait", "task")),
    "wait(timeout=-1)": (lambda c: c.wait("t", timeout=-1), ("timeout",)),
    "generate(expected_seconds='x')": (
        lambda c: c.generate({"prompt": "a", "start_image": URL}, expected_seconds="x"), ("expected_seconds",)),
}


@pytest.mark.parametrize("case", sorted(CLIENT))
def test_bad_arguments_to_the_client_send_nothing(case: str) -> None:
    from framepack_widgets.client import Client

    counter = Counting()
    call, words = CLIENT[case]
    with Client("k", base_url="https://api.example.com", http_client=httpx.Client(transport=httpx.MockTransport(counter))) as c:
        with pytest.raises(InvalidInputError) as info:
            call(c)
    assert_explained(info.value, words)
    assert counter.requests == 0


def test_downloading_a_task_without_a_video_says_to_wait_first() -> None:
    from framepack_widgets.client import Client
    from framepack_widgets.errors import DownloadError
    from framepack_widgets.task import Task, TaskStatus

    counter = Counting()
    with Client("k", base_url="https://api.example.com", http_client=httpx.Client(transport=httpx.MockTransport(counter))) as c:
        with pytest.raises(DownloadError) as info:
            c.download(Task(task_id="t1", status=TaskStatus.PROCESSING), "out.mp4")
    assert_explained(info.value, ("no video URL yet", "wait"))
    assert counter.requests == 0


# --------------------------------------------------------------------------- answers from a hostile API
def _task_answer(task_id: str, status: str = "pending") -> httpx.Response:
    return httpx.Response(200, json={"code": 200, "message": "success", "data": {"task_id": task_id, "status": status}})


def _moved(status: int) -> httpx.Response:
    return httpx.Response(status, headers={"location": "https://elsewhere.example/x"})


HOSTILE_ANSWERS: dict[str, tuple[str, httpx.Response, tuple[str, ...]]] = {
    "create names a 70,000-character task id": ("create", _task_answer("a" * 70_000), ("task id", "may have")),
    "create names a task id with control characters": ("create", _task_answer("t\x1b[2J\x07"), ("task id", "may have")),
    "create names a task id with a slash": ("create", _task_answer("../../x"), ("task id", "may have")),
    "create names a task id with spaces": ("create", _task_answer("t 1 2"), ("task id", "may have")),
    "get names a 70,000-character task id": ("get", _task_answer("a" * 70_000), ("task id",)),
    "get names a task id with a newline": ("get", _task_answer("t1\nx"), ("task id",)),
    "create redirected (307)": ("create", _moved(307), ("redirect", "may have")),
    "create redirected (308)": ("create", _moved(308), ("redirect", "may have")),
    "get redirected (302)": ("get", _moved(302), ("redirect", "elsewhere.example")),
    "cancel redirected (301)": ("cancel", _moved(301), ("redirect", "elsewhere.example")),
    "account redirected (303)": ("account", _moved(303), ("redirect", "elsewhere.example")),
    "create answered with JSON nested 100,000 deep": ("create", httpx.Response(
        200, content=b"[" * 100_000 + b"]" * 100_000), ("not valid JSON", "may have")),
    "get answered with JSON nested 100,000 deep": ("get", httpx.Response(
        404, content=b"[" * 100_000 + b"]" * 100_000), ("no task t1",)),
    "completed, but a final word no client knows and an error": ("get", httpx.Response(200, json={
        "code": 200, "data": {"task_id": "t1", "status": "moderated", "error": {"message": "refused: nsfw"}}}),
        ("failed", "refused: nsfw")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ANSWERS))
def test_hostile_answers_are_typed_errors_and_nothing_is_resent(case: str) -> None:
    from framepack_widgets.client import Client

    call, answer, words = HOSTILE_ANSWERS[case]
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    http = httpx.Client(follow_redirects=True, transport=httpx.MockTransport(api))
    ticks = iter(range(10**6))
    with Client("k", base_url="https://api.example.com", http_client=http, max_retries=2) as c:
        c._sleep = lambda _s: None
        c._clock = lambda: float(next(ticks))  # a second passes at each look: a wait gives up soon
        with pytest.raises(FramepackError) as info:
            {"create": lambda: c.create_task({"prompt": "a", "start_image": URL}),
             "get": lambda: c.wait("t1", timeout=5),
             "cancel": lambda: c.cancel("t1"),
             "account": lambda: c.account_info()}[call]()
    assert_explained(info.value, words)
    assert all(r.url.host == "api.example.com" for r in seen)
    if call == "create":
        assert len(seen) == 1, "the money rule: a create that may have made a task is never resent"


# --------------------------------------------------------------------------- the widget, from Python and from the browser
@pytest.fixture
def widget(tmp_path: Path) -> Any:
    from framepack_widgets import FramepackWidget
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import RunStore

    counter = Counting()
    http = httpx.AsyncClient(transport=httpx.MockTransport(counter))
    w = FramepackWidget(AsyncClient("k", base_url="https://api.example.com", http_client=http),
                        store=RunStore(tmp_path / "store"), resume=False)
    sent: list[dict[str, Any]] = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    w.requests, w.sent = counter, sent  # type: ignore[attr-defined]
    yield w
    w.close()


WIDGET_PY: dict[str, tuple[Callable[[Any], Any], type[BaseException], tuple[str, ...]]] = {
    "generate without a start image": (lambda w: w.generate(), InvalidInputError, ("start image", "drop")),
    "generate with an empty prompt": (
        lambda w: (setattr(w, "start_image", JPG), w.generate()), InvalidInputError, ("prompt", "describe")),
    "a text file as start image": (lambda w: setattr(w, "start_image", b"just text"), InvalidInputError,
                                   ("start image", "not an image")),
    "compare one run": (lambda w: w.compare("x"), ValueError, ("No run",)),
    "sweep with no prompts": (lambda w: (setattr(w, "start_image", JPG), setattr(w, "prompt", "a"), w.sweep(prompt=[])),
                              InvalidInputError, ("prompt", "at least one")),
    "sweep with a duration of 9": (lambda w: (setattr(w, "start_image", JPG), setattr(w, "prompt", "a"),
                                              w.sweep(duration=[10, 9])), InvalidInputError, ("entry 2", "duration")),
    "sweep over its cost cap": (lambda w: (setattr(w, "start_image", JPG), setattr(w, "prompt", "a"),
                                           w.sweep(prompt=["a", "b", "c"], max_cost=0.5)), InvalidInputError,
                                ("max_cost", "Nothing was sent")),
    "sweep whose first prompt is empty": (lambda w: (setattr(w, "start_image", JPG), w.sweep(prompt=["", "b"])),
                                          InvalidInputError, ("entry 1", "prompt", "describe")),
    "sweep of durations with an empty Prompt box": (lambda w: (setattr(w, "start_image", JPG),
                                                               w.sweep(duration=[10, 20])),
                                                    InvalidInputError, ("prompt", "describe")),
    "sweep with a negative cap": (lambda w: (setattr(w, "start_image", JPG), setattr(w, "prompt", "a"),
                                             w.sweep(max_cost=-1)), InvalidInputError, ("max_cost",)),
}


@pytest.mark.parametrize("case", sorted(WIDGET_PY))
async def test_bad_calls_to_the_widget_send_nothing(case: str, widget: Any) -> None:
    call, kind, words = WIDGET_PY[case]
    with pytest.raises(kind) as info:
        call(widget)
    assert_explained(info.value, words)
    assert widget.requests.requests == 0


async def test_a_duration_out_of_range_is_refused_by_the_trait(widget: Any) -> None:
    import traitlets

    with pytest.raises(traitlets.TraitError, match="duration must be whole seconds from 10 to 30"):
        widget.duration = 9
    assert widget.duration == 10 and widget.requests.requests == 0


BROWSER: dict[str, tuple[dict[str, Any], list[bytes], tuple[str, ...]]] = {
    "upload to an unknown slot": ({"type": "upload", "slot": "middle", "name": "a.jpg"}, [JPG], ("slot",)),
    "an empty upload": ({"type": "upload", "slot": "start", "name": "a.jpg"}, [], ("empty", "try again")),
    "a text file uploaded": ({"type": "upload", "slot": "start", "name": "a.txt"}, [b"plain text here"],
                             ("not an image",)),
    "an ftp image URL": ({"type": "image_url", "slot": "start", "url": "ftp://x/y.png"}, [], ("http",)),
    "a javascript: image URL": ({"type": "image_url", "slot": "end", "url": "javascript:alert(1)"}, [], ("http",)),
    "generate without a start image": ({"type": "generate", "request_id": "r1", "prompt": "a"}, [], ("start image",)),
    "generate with duration 99": ({"type": "generate", "request_id": "r2", "duration": 99}, [], ("duration", "10 to 30")),
    "compare one run": ({"type": "compare", "run_ids": ["x"]}, [], ("No run",)),
    "a sweep action for another sweep": ({"type": "sweep", "sweep_id": "nope", "action": "confirm"}, [], ()),
    "history with an offset that is text": ({"type": "history", "offset": "x"}, [], ("older runs", "whole number")),
    "history with an offset that is a list": ({"type": "history", "offset": [1]}, [], ("older runs", "whole number")),
    "history with a fraction for an offset": ({"type": "history", "offset": 2.5}, [], ("older runs", "whole number")),
    "history with a huge offset": ({"type": "history", "offset": 10**30}, [], ()),
    "history with a negative offset": ({"type": "history", "offset": -5}, [], ()),
    "history before text": ({"type": "history", "before": "x"}, [], ("older runs", "whole number")),
    "history before a huge seq": ({"type": "history", "before": 10**30}, [], ()),
    "history before a negative seq": ({"type": "history", "before": -3}, [], ()),
    "cancel a run id that is a list": ({"type": "cancel", "run_id": ["a"]}, [], ("Nothing was cancelled", "run id")),
    "cancel a run id that is a number": ({"type": "cancel", "run_id": 5}, [], ("Nothing was cancelled", "run id")),
    "show a run id that is a dict": ({"type": "show", "run_id": {"a": 1}}, [], ()),
    "posters of run ids that are a number": ({"type": "posters", "run_ids": 5}, [], ()),
    "compare run ids that are a number": ({"type": "compare", "run_ids": 5}, [], ("compare", "list of run ids")),
    "compare run ids that are text": ({"type": "compare", "run_ids": "ab"}, [], ("compare", "list of run ids")),
    "share run ids that are a number": ({"type": "share", "run_ids": 5}, [], ("gallery", "list of run ids")),
    "export a card of a run id that is a list": ({"type": "export", "what": "card", "run_id": ["x"]}, [],
                                                 ("Nothing was exported", "run id")),
    "extend a run id that is a dict": ({"type": "extend", "run_id": {"a": 1}}, [], ("extend", "run id")),
    "upload to a slot that is a list": ({"type": "upload", "slot": ["start"], "name": "a.jpg"}, [JPG],
                                        ("slot", "start and end")),
    "timeline start without the price it showed": (
        {"type": "timeline", "action": "start", "request_id": "t1", "segments": [{"prompt": "a", "duration": 10}]}, [],
        ("price", "Nothing was sent")),
    "timeline start with the price as text": (
        {"type": "timeline", "action": "start", "request_id": "t2", "segments": [{"prompt": "a", "duration": 10}],
         "shown_cost": "0.30"}, [], ("price", "Nothing was sent")),
    "timeline start with a negative price": (
        {"type": "timeline", "action": "start", "request_id": "t3", "segments": [{"prompt": "a", "duration": 10}],
         "shown_cost": -1}, [], ("price", "Nothing was sent")),
    "timeline start with segments that are text": (
        {"type": "timeline", "action": "start", "request_id": "t4", "segments": "abc", "shown_cost": 1}, [],
        ("start image",)),
}

#: Texts from inside Python that no message to a person may hold.
PYTHON_TEXTS = ("went wrong in the kernel", "invalid literal", "int()", "unhashable", "not iterable", "Traceback",
                "too large to convert", "object is not")


@pytest.mark.parametrize("case", sorted(BROWSER))
async def test_bad_browser_messages_are_explained_and_send_nothing(case: str, widget: Any) -> None:
    content, buffers, words = BROWSER[case]
    widget._handle_custom_msg(content, [memoryview(b) for b in buffers])
    errors = [m["message"] for m in widget.sent if m.get("type") == "error"] + [widget._input_error]
    if words:
        assert any(all(w.lower() in e.lower() for w in words) for e in errors), errors
    else:  # answered quietly (an empty page, nothing to show)
        assert errors == [""], errors
    assert not any(t.lower() in e.lower() for e in errors for t in PYTHON_TEXTS), errors
    assert widget.requests.requests == 0 and widget.store.count() == 0


@pytest.mark.parametrize("content", [None, "text", 42, [], {"type": 7}, {"type": "no_such_message"}, {"no": "type"}])
async def test_malformed_browser_messages_are_ignored(content: Any, widget: Any) -> None:
    widget._handle_custom_msg(content, [])
    assert widget.sent == [] and widget.requests.requests == 0


# --------------------------------------------------------------------------- the command line and the environment
def _framepack(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "FRAMEPACK_HOME": str(tmp_path / "home"), **env}
    if "PIAPI_API_KEY" not in env:
        environ.pop("PIAPI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "framepack_widgets.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


@pytest.fixture
def counting_api() -> Any:
    """A simulator the CLI reaches as "PiAPI": any create it sees is a request that was sent."""
    from framepack_widgets.simulator import Simulator

    with Simulator(time_scale=50) as sim:
        yield sim


CLI: dict[str, tuple[list[str], dict[str, str], tuple[str, ...]]] = {
    "duration 9": (["generate", URL, "--prompt", "a", "--duration", "9"], {}, ("duration", "10 to 30")),
    "empty prompt": (["generate", URL, "--prompt", ""], {}, ("prompt", "describe")),
    "missing image": (["generate", "/nope.jpg", "--prompt", "a"], {}, ("no such file",)),
    "timeout 0": (["generate", URL, "--prompt", "a", "--timeout", "0"], {}, ("--timeout", "above 0")),
    "bad FRAMEPACK_SIM_TIME_SCALE": (["generate", URL, "--prompt", "a"], {"FRAMEPACK_SIM_TIME_SCALE": "abc"},
                                     ("FRAMEPACK_SIM_TIME_SCALE", "above 0")),
    "sweep --repeats 0": (["sweep", URL, "--prompt", "a", "--repeats", "0", "--yes"], {}, ("repeats", "1 or more")),
    "sweep --max-concurrent 0": (["sweep", URL, "--prompt", "a", "--max-concurrent", "0", "--yes"], {},
                                 ("--max-concurrent", "at least 1")),
    "sweep --max-cost -1": (["sweep", URL, "--prompt", "a", "--max-cost", "-1", "--yes"], {}, ("max_cost",)),
    "sweep over the cap": (["sweep", URL, "--prompt", "a", "--prompt", "b", "--duration", "30", "--max-cost", "1",
                            "--yes"], {}, ("max_cost", "Nothing was sent")),
    "sweep --duration x": (["sweep", URL, "--prompt", "a", "--duration", "x", "--yes"], {}, ("duration",)),
    "sweep without --yes off a terminal": (["sweep", URL, "--prompt", "a"], {}, ("--yes",)),
    "PIAPI_BASE_URL not a URL": (["generate", URL, "--prompt", "a"], {"PIAPI_API_KEY": "k", "PIAPI_BASE_URL": "nope"},
                                 ("http",)),
    "FRAMEPACK_HOME is a file (sweep)": (["sweep", URL, "--prompt", "a", "--yes"], {"FRAMEPACK_HOME": "<file>"},
                                         ("FRAMEPACK_HOME", "is a file")),
    "record -o under a file": (["record", URL, "--prompt", "a", "-o", "<file>/t.json"], {}, ("-o", "is a file")),
    "record -o unwritable": (["record", URL, "--prompt", "a", "-o", "/proc/framepack-nowhere/t.json"], {},
                             ("-o", "cannot")),
    "record --video under a file": (["record", URL, "--prompt", "a", "-o", "<tmp>/t.json", "--video",
                                     "<file>/v.mp4"], {}, ("--video", "is a file")),
    "record --video unwritable": (["record", URL, "--prompt", "a", "-o", "<tmp>/t.json", "--video",
                                   "/proc/framepack-nowhere/v.mp4"], {}, ("--video", "cannot")),
}


@pytest.mark.parametrize("case", sorted(CLI))
def test_bad_command_lines_exit_2_with_one_clear_line(case: str, tmp_path: Path, counting_api: Any) -> None:
    args, env, words = CLI[case]
    (tmp_path / "a-file").write_text("x")
    args = [a.replace("<file>", str(tmp_path / "a-file")).replace("<tmp>", str(tmp_path)) for a in args]
    if env.get("FRAMEPACK_HOME") == "<file>":
        env = {**env, "FRAMEPACK_HOME": str(tmp_path / "a-file")}
    env.setdefault("PIAPI_API_KEY", counting_api.api_key)
    env.setdefault("PIAPI_BASE_URL", counting_api.base_url)
    done = _framepack(args, tmp_path, **env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    for word in words:
        assert word.lower() in done.stderr.lower(), (word, done.stderr)
    assert last.startswith("framepack")
    assert counting_api.count("create") == 0 and counting_api.count("upload") == 0


# --------------------------------------------------------------------------- the store
def test_a_store_from_a_newer_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    import sqlite3

    from framepack_widgets.runs import RunStore, StoreVersionError

    RunStore(tmp_path / "s").close()
    db = sqlite3.connect(tmp_path / "s" / "runs.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreVersionError) as info:
        RunStore(tmp_path / "s")
    assert_explained(info.value, ("newer version", "pip install -U"))


def test_a_home_that_is_a_file_stops_the_widget_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framepack_widgets import FramepackWidget
    from framepack_widgets.runs.store import StoreError

    (tmp_path / "home").write_text("x")
    monkeypatch.setenv("FRAMEPACK_HOME", str(tmp_path / "home"))
    with pytest.raises(StoreError) as info:
        FramepackWidget()
    assert_explained(info.value, ("FRAMEPACK_HOME", "is a file", "folder"))


def test_the_table_is_at_least_a_hundred_cases() -> None:
    counted = len(INPUTS) + len(CLIENT) + len(HOSTILE_ANSWERS) + len(WIDGET_PY) + len(BROWSER) + len(CLI) + 7 + 4
    print(f"bad inputs: {counted} cases")
    assert counted >= 100
