"""Client and AsyncClient against httpx.MockTransport: envelopes, retries, errors, secrets,
waiting, downloads and uploads. No network, no real sleeping (the `_sleep` hook records)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.client import _polling as polling
from framepack_widgets.client import _retry as retry
from framepack_widgets.client import _settings as settings
from framepack_widgets.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    FramepackError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TaskFailedError,
    TaskTimeoutError,
)
from framepack_widgets.inputs import FramepackInput, ImageSource
from framepack_widgets.task import Task, TaskStatus, parse_task

KEY = "sk-DISTINCTIVE-k3y-never-show-4711"
BASE = "https://api.piapi.ai"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 64


# --------------------------------------------------------------------------- helpers


def envelope(status: str = "pending", task_id: str = "t-1", **data: Any) -> dict:
    body = {"task_id": task_id, "model": "Qubico/framepack", "task_type": "img2video", "status": status}
    body.update(data)
    return {"code": 200, "message": "success", "data": body}


def ok(status: str = "pending", **data: Any) -> httpx.Response:
    return httpx.Response(200, json=envelope(status, **data))


def err(status: int, message: str = "nope", headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"code": status, "message": message}, headers=headers)


class Server:
    """Scripted answers per (method, path prefix); records every request."""

    def __init__(self, *routes: tuple[str, str, list]) -> None:
        self.routes = [(m, p, list(replies)) for m, p, replies in routes]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for method, prefix, replies in self.routes:
            if request.method == method and str(request.url).startswith(prefix):
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if isinstance(reply, Exception):
                    if isinstance(reply, httpx.RequestError):
                        reply._request = request  # type: ignore[attr-defined]
                    raise reply
                if callable(reply):
                    return reply(request)
                return reply
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    def count(self, method: str, prefix: str = "") -> int:
        return sum(1 for r in self.requests if r.method == method and str(r.url).startswith(prefix))


CREATE = f"{BASE}/api/v1/task"
GET = f"{BASE}/api/v1/task/"


def make_client(server: Server, **kwargs: Any) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    client = Client(KEY, http_client=httpx.Client(transport=httpx.MockTransport(server)), **kwargs)
    client._sleep = sleeps.append
    return client, sleeps


def make_async(server: Server, **kwargs: Any) -> tuple[AsyncClient, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = AsyncClient(KEY, http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)), **kwargs)
    client._sleep = sleep
    return client, sleeps


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def image(data: bytes = b"\x89PNG fake", mime: str = "image/png") -> ImageSource:
    """Stored bytes as an ImageSource: nothing is decoded, so any bytes do."""
    return ImageSource(data=data, mime=mime)


def make_input(start: ImageSource, end: ImageSource | None = None, image_encoding: str = "base64") -> FramepackInput:
    return FramepackInput("a cat turns its head", start, end_image=end, image_encoding=image_encoding)


DICT_INPUT = {"prompt": "a cat", "start_image": "https://example.com/cat.png", "duration": 10}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIAPI_API_KEY", raising=False)
    monkeypatch.delenv("PIAPI_BASE_URL", raising=False)


# --------------------------------------------------------------------------- envelopes

VIDEO = "https://img.theapi.app/temp/abc.mp4"
ENVELOPE_CASES = [
    ("code 200", {"code": 200, "message": "success", "data": {"task_id": "a", "status": "pending"}}, {"status": TaskStatus.PENDING}),
    ("code 0", {"code": 0, "message": "", "data": {"task_id": "a", "status": "processing"}}, {"status": TaskStatus.PROCESSING}),
    ("code as text", {"code": "200", "data": {"task_id": "a", "status": "pending"}}, {"status": TaskStatus.PENDING}),
    ("no code", {"data": {"task_id": "a", "status": "pending"}}, {"status": TaskStatus.PENDING}),
    ("capitalised status", envelope("Completed", task_id="a", output={"video_url": VIDEO}), {"status": TaskStatus.COMPLETED}),
    ("upper status", envelope("PROCESSING", task_id="a"), {"status": TaskStatus.PROCESSING}),
    ("unknown status", envelope("warming-up", task_id="a"), {"status": TaskStatus.UNKNOWN}),
    ("staged", envelope("staged", task_id="a"), {"status": TaskStatus.STAGED}),
    ("output null", envelope("pending", task_id="a", output=None), {"video_url": None}),
    ("blank fields", envelope("pending", task_id="a", output={"video_url": "", "video": ""}), {"video_url": None}),
    ("output.video_url", envelope("completed", task_id="a", output={"video_url": VIDEO}), {"video_url": VIDEO}),
    ("output.video string", envelope("completed", task_id="a", output={"video": VIDEO}), {"video_url": VIDEO}),
    ("output.video.url", envelope("completed", task_id="a", output={"video": {"url": VIDEO}}), {"video_url": VIDEO}),
    (
        "works resource_without_watermark",
        envelope("completed", task_id="a", output={"works": [{"video": {"resource_without_watermark": VIDEO, "resource": "https://x/wm.mp4"}}]}),
        {"video_url": VIDEO},
    ),
    ("works resource", envelope("completed", task_id="a", output={"works": [{"video": {"resource": VIDEO}}]}), {"video_url": VIDEO}),
    (
        "zero time",
        envelope("pending", task_id="a", meta={"created_at": "2025-06-30T07:11:30.719851187Z", "started_at": "0001-01-01T00:00:00Z", "ended_at": "0001-01-01T00:00:00Z"}),
        {"started_at": None, "ended_at": None},
    ),
    (
        "offset timestamps",
        envelope("completed", task_id="a", meta={"started_at": "2025-06-30T15:11:31.89+08:00", "ended_at": "2025-06-30T07:12:03.38Z"}),
        {"ended_at": "2025-06-30T07:12:03.380000+00:00"},
    ),
    ("percent", envelope("processing", task_id="a", output={"video_url": "", "percent": 42}), {"percent": 42.0}),
    ("logs", envelope("processing", task_id="a", logs=["loading model", "sampling"]), {"logs": ("loading model", "sampling")}),
    (
        "usage",
        envelope("completed", task_id="a", meta={"usage": {"type": "point", "frozen": 0, "consume": 3000000}}),
        {"consume": 3000000},
    ),
    (
        "failed with message",
        envelope("failed", task_id="a", error={"code": 10000, "raw_message": "raw", "message": "face not detected", "detail": None}),
        {"status": TaskStatus.FAILED, "error": "face not detected"},
    ),
    (
        "failed with only raw_message",
        envelope("failed", task_id="a", error={"code": 10000, "raw_message": "gpu out of memory", "message": ""}),
        {"error": "gpu out of memory"},
    ),
    ("success has no error", envelope("completed", task_id="a", error={"code": 0, "raw_message": "", "message": ""}), {"error": None}),
]


@pytest.mark.parametrize("name,body,expected", ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_get_task_parses_every_envelope_variant(name: str, body: dict, expected: dict) -> None:
    server = Server(("GET", GET, [httpx.Response(200, json=body)]))
    client, _ = make_client(server)
    task = client.get_task("a")
    assert task.task_id == "a"
    for attr, value in expected.items():
        got = getattr(task, attr)
        if attr.endswith("_at") and value is not None:
            got = got.astimezone(__import__("datetime").timezone.utc).isoformat()
        assert got == value, attr
    # started_at with an offset is timezone-aware and equals the UTC instant
    if name == "offset timestamps":
        assert task.started_at.utcoffset() is not None
        assert task.started_at.timestamp() == pytest.approx(1751267491.89)


@pytest.mark.parametrize("status", ["failed", "FAILED", "cancelled"])
def test_wait_on_failed_task_raises_with_api_message(status: str) -> None:
    failed = envelope(status, error={"code": 10000, "raw_message": "prompt was refused by the filter", "message": ""})
    server = Server(("GET", GET, [httpx.Response(200, json=failed)]))
    client, _ = make_client(server)
    with pytest.raises(TaskFailedError) as info:
        client.wait("t-1")
    assert "prompt was refused by the filter" in str(info.value)
    assert info.value.task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)


def test_non_success_code_in_200_reply_is_api_error_with_message() -> None:
    body = {"code": 10002, "message": "model is under maintenance", "data": None}
    server = Server(("GET", GET, [httpx.Response(200, json=body)]))
    client, _ = make_client(server)
    with pytest.raises(APIError) as info:
        client.get_task("t-1")
    assert "model is under maintenance" in str(info.value)
    assert server.count("GET") == 1  # an explicit answer: not retried


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, content=b'{"code": 200, "data": {"task_id": '),
        httpx.Response(200, json={"code": 200, "data": None}),
        httpx.Response(200, json={"code": 200, "data": {"status": "pending"}}),
        httpx.Response(200, json=[1, 2]),
    ],
    ids=["html", "truncated", "data null", "no task_id", "not an object"],
)
def test_malformed_get_answer_is_api_error_after_retries(reply: httpx.Response) -> None:
    server = Server(("GET", GET, [reply]))
    client, sleeps = make_client(server, max_retries=2)
    with pytest.raises(APIError) as info:
        client.get_task("t-1")
    assert not isinstance(info.value, APIStatusError)
    assert isinstance(info.value, retry.MalformedResponseError)
    assert server.count("GET") == 3 and len(sleeps) == 2
    assert "try again" in str(info.value)


# --------------------------------------------------------------------------- create requests


def test_create_body_headers_and_timeouts() -> None:
    server = Server(("POST", CREATE, [ok("pending")]))
    client, _ = make_client(server, timeout=12.5)
    task = client.create_task(make_input(image(), image(b"end")))
    assert task.status is TaskStatus.PENDING and task.task_id == "t-1"
    request = server.requests[0]
    assert request.headers["x-api-key"] == KEY
    body = json.loads(request.content)
    assert body["model"] == "Qubico/framepack" and body["task_type"] == "img2video"
    assert body["config"] == {"service_mode": "public"}
    assert body["input"]["start_image"] == base64.b64encode(b"\x89PNG fake").decode()
    assert body["input"]["end_image"] == base64.b64encode(b"end").decode()
    assert body["input"]["duration"] == 10
    timeout = request.extensions["timeout"]
    assert timeout["connect"] == 10.0 and timeout["read"] == 12.5 and timeout["write"] == 12.5


def test_create_accepts_a_plain_input_dict() -> None:
    server = Server(("POST", CREATE, [ok("pending")]))
    client, _ = make_client(server)
    client.create_task(DICT_INPUT)
    assert json.loads(server.requests[0].content)["input"] == DICT_INPUT


@pytest.mark.parametrize(
    "bad",
    [
        {"start_image": "https://x/a.png"},
        {"prompt": "  ", "start_image": "https://x/a.png"},
        {"prompt": "p"},
        {"prompt": "p", "start_image": "https://x/a.png", "duration": 5},
        {"prompt": "p", "start_image": "https://x/a.png", "duration": 10.5},
        {"prompt": "p", "start_image": "https://x/a.png", "end_image": 3},
        "just a string",
        42,
    ],
)
def test_bad_dict_input_is_refused_before_sending(bad: Any) -> None:
    server = Server(("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    with pytest.raises(InvalidInputError):
        client.create_task(bad)
    assert server.requests == []


def test_real_framepack_input_is_accepted() -> None:
    inputs = pytest.importorskip("framepack_widgets.inputs")
    pil = pytest.importorskip("PIL.Image")
    image = pil.new("RGB", (32, 24), (10, 200, 30))
    server = Server(("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    client.create_task(inputs.FramepackInput("a cat", image, duration=12))
    sent = json.loads(server.requests[0].content)["input"]
    assert sent["prompt"] == "a cat" and sent["duration"] == 12
    assert base64.b64decode(sent["start_image"])[:2] in (b"\xff\xd8", b"\x89P")


def test_missing_key_is_a_clear_error_and_nothing_is_sent() -> None:
    server = Server(("POST", CREATE, [ok()]), ("GET", GET, [ok()]))
    client = Client(http_client=httpx.Client(transport=httpx.MockTransport(server)))
    for call in (lambda: client.create_task(DICT_INPUT), lambda: client.get_task("t-1")):
        with pytest.raises(AuthenticationError) as info:
            call()
        text = str(info.value)
        assert "api_key=" in text and "PIAPI_API_KEY" in text and "Simulator" in text
    assert server.requests == []


# --------------------------------------------------------------------------- the money rule


def test_create_connect_error_is_retried() -> None:
    failures = [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("no free connection")]
    server = Server(("POST", CREATE, [*failures, ok()]))
    client, sleeps = make_client(server)
    assert client.create_task(DICT_INPUT).task_id == "t-1"
    assert server.count("POST") == 4 and len(sleeps) == 3


async def test_async_create_that_never_got_a_connection_is_retried() -> None:
    server = Server(("POST", CREATE, [httpx.PoolTimeout("no free connection"), httpx.ConnectError("refused"), ok()]))
    client, sleeps = make_async(server)
    assert (await client.create_task(DICT_INPUT)).task_id == "t-1"
    assert server.count("POST") == 3 and len(sleeps) == 2


def test_create_connect_error_exhausted_says_no_task_was_created() -> None:
    server = Server(("POST", CREATE, [httpx.ConnectError("refused")]))
    client, sleeps = make_client(server, max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        client.create_task(DICT_INPUT)
    assert not isinstance(info.value, SubmissionUnknownError)
    assert "No task was created" in str(info.value)
    assert server.count("POST") == 3


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(500, json={"code": 500, "message": "internal"}),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(504, text="gateway timeout"),
        httpx.Response(200, content=b'{"code": 200, "data": {"task_'),
        httpx.Response(200, content=b"<html>ok</html>"),
        httpx.Response(200, json={"code": 200, "message": "success", "data": {"status": "pending"}}),
    ],
    ids=["read-timeout", "write-timeout", "reset", "remote-protocol", "500", "502", "504", "truncated-json", "html", "no-task-id"],
)
def test_create_that_may_have_reached_the_server_is_never_resent(failure: Any) -> None:
    server = Server(("POST", CREATE, [failure, ok()]))
    client, sleeps = make_client(server)
    with pytest.raises(SubmissionUnknownError) as info:
        client.create_task(DICT_INPUT)
    assert server.count("POST") == 1 and sleeps == []
    text = str(info.value)
    assert "may have created a task" in text and "dashboard" in text and "nothing was resent" in text
    assert info.value.request is not None and info.value.request.method == "POST"
    assert "x-api-key" not in info.value.request.headers  # the carried request has no key
    assert json.loads(info.value.request.content)["input"] == DICT_INPUT


@pytest.mark.parametrize("status", [429, 503])
def test_create_429_and_503_are_retried_honouring_retry_after(status: int) -> None:
    server = Server(("POST", CREATE, [err(status, headers={"Retry-After": "2"}), err(status, headers={"Retry-After": "7"}), ok()]))
    client, sleeps = make_client(server)
    assert client.create_task(DICT_INPUT).task_id == "t-1"
    assert server.count("POST") == 3
    assert sleeps == [2.0, 7.0]


def test_create_429_exhausted_is_rate_limit_error_with_retry_after() -> None:
    server = Server(("POST", CREATE, [err(429, "slow down", headers={"Retry-After": "3"})]))
    client, sleeps = make_client(server, max_retries=2)
    with pytest.raises(RateLimitError) as info:
        client.create_task(DICT_INPUT)
    assert server.count("POST") == 3 and sleeps == [3.0, 3.0]
    assert info.value.retry_after == 3.0 and info.value.status_code == 429
    assert "slow down" in str(info.value)


def test_create_503_exhausted_is_server_error_not_submission_unknown() -> None:
    server = Server(("POST", CREATE, [err(503, "maintenance")]))
    client, _ = make_client(server, max_retries=1)
    with pytest.raises(ServerError) as info:
        client.create_task(DICT_INPUT)
    assert not isinstance(info.value, SubmissionUnknownError)
    assert server.count("POST") == 2


@pytest.mark.parametrize(
    "status,cls",
    [(400, BadRequestError), (401, AuthenticationError), (403, AuthenticationError), (404, NotFoundError), (408, APIStatusError), (422, APIStatusError)],
)
def test_create_client_errors_are_never_retried(status: int, cls: type) -> None:
    server = Server(("POST", CREATE, [err(status, "the api says no")]))
    client, sleeps = make_client(server)
    with pytest.raises(cls) as info:
        client.create_task(DICT_INPUT)
    assert type(info.value) is cls
    assert server.count("POST") == 1 and sleeps == []
    assert info.value.status_code == status and "the api says no" in str(info.value)


def test_create_with_max_retries_zero_sends_once() -> None:
    server = Server(("POST", CREATE, [httpx.ConnectError("refused")]))
    client, _ = make_client(server, max_retries=0)
    with pytest.raises(APIConnectionError):
        client.create_task(DICT_INPUT)
    assert server.count("POST") == 1


# --------------------------------------------------------------------------- reading calls


@pytest.mark.parametrize(
    "failure",
    [
        err(500), err(502), err(503), err(504), err(429), err(408),
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ReadError("reset"),
        httpx.RemoteProtocolError("dropped"),
    ],
    ids=["500", "502", "503", "504", "429", "408", "connect", "read-timeout", "read-error", "dropped"],
)
def test_get_retries_transient_failures_then_succeeds(failure: Any) -> None:
    server = Server(("GET", GET, [failure, failure, ok("processing")]))
    client, sleeps = make_client(server)
    assert client.get_task("t-1").status is TaskStatus.PROCESSING
    assert server.count("GET") == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "failure,cls",
    [
        (err(500), ServerError), (err(503), ServerError), (err(429), RateLimitError), (err(408), APIStatusError),
        (httpx.ConnectError("refused"), APIConnectionError), (httpx.ReadTimeout("slow"), APITimeoutError),
        (httpx.ConnectTimeout("slow"), APITimeoutError),
    ],
)
@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_get_gives_up_after_max_retries(failure: Any, cls: type, max_retries: int) -> None:
    server = Server(("GET", GET, [failure]))
    client, sleeps = make_client(server, max_retries=max_retries)
    with pytest.raises(cls):
        client.get_task("t-1")
    assert server.count("GET") == max_retries + 1 and len(sleeps) == max_retries


@pytest.mark.parametrize("status,cls", [(400, BadRequestError), (401, AuthenticationError), (403, AuthenticationError), (404, NotFoundError)])
def test_get_client_errors_are_not_retried(status: int, cls: type) -> None:
    server = Server(("GET", GET, [err(status, "Record Not Found")]))
    client, _ = make_client(server)
    with pytest.raises(cls) as info:
        client.get_task("t-1")
    assert server.count("GET") == 1
    assert "Record Not Found" in str(info.value)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    server = Server(("GET", GET, [err(500)]))
    client, sleeps = make_client(server, max_retries=8)
    with pytest.raises(ServerError):
        client.get_task("t-1")
    assert len(sleeps) == 8
    for attempt, slept in enumerate(sleeps):
        assert 0.0 <= slept <= min(8.0, 0.5 * 2**attempt)
    import random

    rng = random.Random(3)
    draws = [retry.backoff_delay(6, rng=rng) for _ in range(200)]
    assert max(draws) <= 8.0 and min(draws) >= 0.0 and len(set(draws)) > 150  # jittered, capped


def test_get_429_honours_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    server = Server(("GET", GET, [err(429, headers={"Retry-After": when}), ok("processing")]))
    client, sleeps = make_client(server)
    client.get_task("t-1")
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 5.0


def test_retry_after_is_capped() -> None:
    server = Server(("GET", GET, [err(503, headers={"Retry-After": "3600"}), ok("processing")]))
    client, sleeps = make_client(server)
    client.get_task("t-1")
    assert sleeps == [60.0]


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "999"}, 60.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict, expected: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert retry.parse_retry_after(httpx.Headers(headers), now=now) == expected


def test_cancel_and_account_info() -> None:
    server = Server(
        ("DELETE", GET, [ok("cancelled")]),
        ("GET", f"{BASE}/account/info", [httpx.Response(200, json={"code": 200, "data": {"credits": 12.5, "plan": "free"}})]),
    )
    client, _ = make_client(server)
    task = client.cancel("t-1")
    assert task is not None and task.status is TaskStatus.CANCELLED
    assert server.requests[0].method == "DELETE" and server.requests[0].url.path == "/api/v1/task/t-1"
    assert client.account_info() == {"credits": 12.5, "plan": "free"}


def test_cancel_without_task_in_answer_returns_none_and_unusable_ids_are_refused() -> None:
    server = Server(("DELETE", GET, [httpx.Response(200, json={"code": 200, "message": "ok", "data": None})]))
    client, _ = make_client(server)
    assert client.cancel("t-1:b") is None
    assert server.requests[0].url.raw_path == b"/api/v1/task/t-1%3Ab"
    with pytest.raises(InvalidInputError, match="task id"):
        client.cancel("a/b?c")  # never sent: not an id PiAPI gives
    assert len(server.requests) == 1


@pytest.mark.parametrize("refusal", [405, 404])
def test_cancel_falls_back_to_the_post_route_piapis_cli_uses(refusal: int) -> None:
    server = Server(
        ("DELETE", GET, [err(refusal, "Method Not Allowed" if refusal == 405 else "404 page not found")]),
        ("POST", f"{GET}t-1/cancel", [ok("cancelled")]),
    )
    client, _ = make_client(server)
    task = client.cancel("t-1")
    assert task is not None and task.status is TaskStatus.CANCELLED
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("DELETE", "/api/v1/task/t-1"), ("POST", "/api/v1/task/t-1/cancel")]


async def test_cancel_falls_back_in_the_async_client_too() -> None:
    server = Server(("DELETE", GET, [err(405, "Method Not Allowed")]), ("POST", f"{GET}t-1/cancel", [ok("cancelled")]))
    client, _ = make_async(server)
    task = await client.cancel("t-1")
    assert task is not None and task.status is TaskStatus.CANCELLED and len(server.requests) == 2


def test_a_cancel_both_routes_refuse_says_what_piapi_answered_to_each() -> None:
    server = Server(
        ("DELETE", GET, [err(405, "Method Not Allowed")]),
        ("POST", f"{GET}t-1/cancel", [err(400, "task t-1 is processing: only pending tasks can be cancelled")]),
    )
    client, _ = make_client(server)
    with pytest.raises(BadRequestError) as info:
        client.cancel("t-1")
    text = str(info.value)
    assert "405" in text and "Method Not Allowed" in text and "only pending tasks can be cancelled" in text
    assert len(server.requests) == 2


def test_a_cancel_refused_for_a_reason_is_not_sent_twice() -> None:
    server = Server(("DELETE", GET, [err(400, "only pending tasks can be cancelled")]))
    client, _ = make_client(server)
    with pytest.raises(BadRequestError, match="only pending"):
        client.cancel("t-1")
    assert len(server.requests) == 1


@pytest.mark.parametrize("word, outcome", [("complete", "completed"), ("failure", "failed"), ("rejected", "failed")])
def test_a_final_word_ends_the_wait_at_once(word: str, outcome: str) -> None:
    data = {"output": {"video_url": "https://img.example/v.mp4"}} if outcome == "completed" else {}
    server = Server(("GET", GET, [ok(word, **data)]))
    client, sleeps = make_client(server)
    if outcome == "completed":
        assert client.wait("t-1", timeout=3600).status is TaskStatus.COMPLETED
    else:
        with pytest.raises(TaskFailedError):
            client.wait("t-1", timeout=3600)
    assert len(server.requests) == 1 and sleeps == []


def test_account_info_top_level_fields() -> None:
    server = Server(("GET", f"{BASE}/account/info", [httpx.Response(200, json={"code": 200, "credits": 3})]))
    client, _ = make_client(server)
    assert client.account_info()["credits"] == 3


# --------------------------------------------------------------------------- error messages


@pytest.mark.parametrize(
    "status,cls,words",
    [
        (400, BadRequestError, "400 Bad Request"),
        (401, AuthenticationError, "PIAPI_API_KEY"),
        (403, AuthenticationError, "plan"),
        (404, NotFoundError, "t-1"),
        (429, RateLimitError, "try again"),
        (500, ServerError, "Try again"),
        (502, ServerError, "Try again"),
        (418, APIStatusError, "418"),
    ],
)
def test_status_error_mapping_and_messages(status: int, cls: type, words: str) -> None:
    server = Server(("GET", GET, [err(status, "explained by the API")]))
    client, _ = make_client(server, max_retries=0)
    with pytest.raises(cls) as info:
        client.get_task("t-1")
    error = info.value
    assert type(error) is cls and isinstance(error, FramepackError)
    assert error.status_code == status and error.body == {"code": status, "message": "explained by the API"}
    assert "explained by the API" in str(error) and words in str(error)
    assert error.response is not None and error.response.status_code == status
    assert "x-api-key" not in error.request.headers
    assert "x-api-key" not in error.response.request.headers


def test_non_json_error_body_still_gives_a_message() -> None:
    server = Server(("GET", GET, [httpx.Response(502, text="<html>Bad Gateway from nginx</html>")]))
    client, _ = make_client(server, max_retries=0)
    with pytest.raises(ServerError) as info:
        client.get_task("t-1")
    assert "Bad Gateway from nginx" in str(info.value) and info.value.body is None


# --------------------------------------------------------------------------- secrets


def test_key_never_appears_in_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"invalid key {KEY}"
    server = Server(
        ("POST", CREATE, [httpx.ReadTimeout(f"timed out talking with {KEY}")]),
        ("GET", f"{GET}401", [err(401, echo)]),
        ("GET", f"{GET}conn", [httpx.ConnectError(f"refused for {KEY}")]),
        ("GET", f"{GET}env", [httpx.Response(200, json={"code": 7, "message": echo})]),
    )
    client, _ = make_client(server, max_retries=1)
    errors: list[BaseException] = []
    for call in (
        lambda: client.create_task(DICT_INPUT),
        lambda: client.get_task("401"),
        lambda: client.get_task("conn"),
        lambda: client.get_task("env"),
        lambda: client.download(Task("x", TaskStatus.PENDING), "out.mp4"),
    ):
        with pytest.raises(FramepackError) as info:
            call()
        errors.append(info.value)
    texts = [repr(client), str(client), repr(client.__dict__)] + [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [str(getattr(e, "body", "")) for e in errors] + [caplog.text]
    for e in errors:
        request = getattr(e, "request", None)
        if request is not None:
            texts.append(str(dict(request.headers)))
    for text in texts:
        assert KEY not in text
    assert "***" in str(errors[1])  # the API's echo was redacted, not dropped
    assert caplog.records, "debug logs were written"
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(client._settings)


def test_redact_helper() -> None:
    assert settings.redact(f"a {KEY} b", KEY) == "a *** b"
    assert settings.redact("nothing here", None, "") == "nothing here"
    assert repr(settings.Secret(KEY)) == "Secret('***')"


# --------------------------------------------------------------------------- settings


def test_environment_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", KEY)
    monkeypatch.setenv("PIAPI_BASE_URL", "http://127.0.0.1:8765/")
    client = Client()
    assert client.base_url == "http://127.0.0.1:8765" and client.has_api_key
    assert not client.is_simulator  # this machine, but a real key: a proxy to PiAPI until the server says otherwise
    assert client.upload_url == "http://127.0.0.1:8765/api/ephemeral_resource"
    assert KEY not in repr(client)
    client.close()
    explicit = Client("other", base_url="https://api.piapi.ai")
    assert explicit.base_url == BASE and not explicit.is_simulator
    assert explicit.upload_url == "https://upload.theapi.app/api/ephemeral_resource"
    assert explicit.timeout.connect == 10.0 and explicit.timeout.read == 30.0
    assert explicit.timeout.pool is None  # queueing for a pooled connection never times out by itself
    assert isinstance(explicit.poll, polling.AdaptivePoll)
    explicit.close()
    monkeypatch.delenv("PIAPI_BASE_URL")
    assert Client().base_url == BASE


@pytest.mark.parametrize("url,loopback", [
    ("http://localhost:9", True), ("http://127.0.0.5:1", True), ("http://[::1]:80", True),
    ("https://api.piapi.ai", False), ("http://10.0.0.1", False),
])
def test_is_simulator(url: str, loopback: bool) -> None:
    """This machine with the simulator's kind of key: made for the simulator; any other key is PiAPI."""
    assert Client("sim-k3y", base_url=url, allow_http=True).is_simulator is loopback
    assert not Client("sk-real", base_url=url, allow_http=True).is_simulator


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        Client("k", base_url="ftp://x")
    with pytest.raises(InvalidInputError):
        Client("k", max_retries=-1)
    with pytest.raises(InvalidInputError):
        Client("k", timeout=0)
    with pytest.raises(TypeError):
        Client("k", http_client=httpx.AsyncClient())  # type: ignore[arg-type]


def test_context_managers_close_only_owned_clients() -> None:
    with Client("k") as client:
        pass
    assert client._http.is_closed
    shared = httpx.Client()
    with Client("k", http_client=shared):
        pass
    assert not shared.is_closed
    shared.close()


async def test_async_context_manager() -> None:
    async with AsyncClient("k") as client:
        pass
    assert client._http.is_closed


# --------------------------------------------------------------------------- waiting


def progress_server(statuses: list[dict]) -> Server:
    return Server(("GET", GET, [httpx.Response(200, json=envelope(**s)) for s in statuses]))


def test_wait_reports_every_change_once_and_returns_completed() -> None:
    server = progress_server([
        {"status": "pending"},
        {"status": "pending"},
        {"status": "processing", "output": {"percent": 10}},
        {"status": "processing", "output": {"percent": 10}},
        {"status": "processing", "output": {"percent": 10}, "logs": ["sampling"]},
        {"status": "processing", "output": {"percent": 60}, "logs": ["sampling"]},
        {"status": "completed", "output": {"video_url": VIDEO}},
    ])
    client, sleeps = make_client(server)
    seen: list[Task] = []
    task = client.wait("t-1", on_update=seen.append)
    assert task.status is TaskStatus.COMPLETED and task.video_url == VIDEO
    assert [(t.status.value, t.percent, t.logs) for t in seen] == [
        ("pending", None, ()),
        ("processing", 10.0, ()),
        ("processing", 10.0, ("sampling",)),
        ("processing", 60.0, ("sampling",)),
        ("completed", None, ()),
    ]
    assert server.count("GET") == 7 and len(sleeps) == 6  # wait(id): first GET at once


def test_wait_on_a_task_sleeps_first_and_terminal_task_needs_no_request() -> None:
    server = progress_server([{"status": "completed", "output": {"video_url": VIDEO}}])
    client, sleeps = make_client(server)
    pending = parse_task(envelope("pending"))
    seen: list[Task] = []
    done = client.wait(pending, on_update=seen.append)
    assert [t.status for t in seen] == [TaskStatus.PENDING, TaskStatus.COMPLETED]
    assert len(sleeps) == 1 and server.count("GET") == 1
    assert client.wait(done) is done and server.count("GET") == 1


def test_unknown_status_keeps_polling() -> None:
    server = progress_server([
        {"status": "queued-somewhere"}, {"status": "Running"}, {"status": "COMPLETED", "output": {"video_url": VIDEO}},
    ])
    client, _ = make_client(server)
    assert client.wait("t-1").status is TaskStatus.COMPLETED
    assert server.count("GET") == 3


def test_wait_rides_out_transient_errors() -> None:
    server = Server(("GET", GET, [
        ok("processing", output={"percent": 5}),
        err(503), err(429, headers={"Retry-After": "4"}), httpx.ConnectError("down"), httpx.ReadTimeout("slow"),
        httpx.Response(200, content=b"{broken"), err(500),
        ok("completed", output={"video_url": VIDEO}),
    ]))
    client, sleeps = make_client(server, max_retries=0, poll=0.5)
    assert client.wait("t-1", timeout=600).status is TaskStatus.COMPLETED
    assert server.count("GET") == 8
    assert 4.0 in sleeps  # Retry-After honoured while waiting


def test_wait_stops_on_non_transient_errors() -> None:
    server = Server(("GET", GET, [ok("processing"), err(401, "bad key")]))
    client, _ = make_client(server)
    with pytest.raises(AuthenticationError):
        client.wait("t-1")
    server = Server(("GET", GET, [err(404, "Record Not Found")]))
    client, _ = make_client(server)
    with pytest.raises(NotFoundError):
        client.wait("t-1")
    assert server.count("GET") == 1


def test_wait_tolerates_a_brief_404_right_after_create() -> None:
    server = Server(("GET", GET, [err(404), err(404), ok("completed", output={"video_url": VIDEO})]))
    client, _ = make_client(server)
    assert client.wait(parse_task(envelope("pending"))).status is TaskStatus.COMPLETED


def test_wait_deadline_raises_task_timeout_with_last_task() -> None:
    server = progress_server([{"status": "processing", "output": {"percent": 30}}])
    client, _ = make_client(server)
    clock = VirtualClock()
    client._clock, client._sleep = clock, clock.sleep
    with pytest.raises(TaskTimeoutError) as info:
        client.wait("t-1", timeout=20)
    error = info.value
    assert error.task_id == "t-1" and error.last_task is not None and error.last_task.percent == 30
    assert clock.now == pytest.approx(20.0)  # never slept past the deadline
    assert "wait('t-1')" in str(error) and "30%" in str(error)


def test_wait_deadline_with_only_errors_still_times_out() -> None:
    server = Server(("GET", GET, [err(503)]))
    client, _ = make_client(server)
    clock = VirtualClock()
    client._clock, client._sleep = clock, clock.sleep
    with pytest.raises(TaskTimeoutError) as info:
        client.wait("t-1", timeout=15)
    assert info.value.last_task is None and "ServerError" in str(info.value)
    assert clock.now == pytest.approx(15.0)


def test_generate_shares_one_deadline() -> None:
    clock = VirtualClock()

    def slow_create(request: httpx.Request) -> httpx.Response:
        clock.now += 8
        return ok("pending")

    server = Server(("POST", CREATE, [slow_create]), ("GET", GET, [ok("processing")]))
    client, _ = make_client(server)
    client._clock, client._sleep = clock, clock.sleep
    with pytest.raises(TaskTimeoutError):
        client.generate(DICT_INPUT, timeout=10)
    assert clock.now == pytest.approx(10.0)


async def test_sync_client_works_inside_a_running_event_loop() -> None:
    asyncio.get_running_loop()  # we are inside one, as in Jupyter
    server = Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [ok("processing", output={"percent": 50}), ok("completed", output={"video_url": VIDEO})]))
    client, _ = make_client(server)
    with client:
        task = client.generate(DICT_INPUT)
    assert task.status is TaskStatus.COMPLETED


async def test_async_client_generate_with_sync_and_async_on_update() -> None:
    for kind in ("sync", "async"):
        server = Server(
            ("POST", CREATE, [ok("pending")]),
            ("GET", GET, [ok("processing", output={"percent": 50}), ok("completed", output={"video_url": VIDEO})]),
        )
        client, sleeps = make_async(server)
        seen: list[str] = []
        if kind == "sync":
            def on_update(task: Task) -> None:
                seen.append(task.status.value)
        else:
            async def on_update(task: Task) -> None:  # type: ignore[misc]
                await asyncio.sleep(0)
                seen.append(task.status.value)
        async with client:
            task = await client.generate(DICT_INPUT, on_update=on_update)
        assert task.video_url == VIDEO
        assert seen == ["pending", "processing", "completed"]
        assert len(sleeps) == 2


async def test_async_client_errors_retries_and_money_rule() -> None:
    server = Server(
        ("POST", CREATE, [httpx.ConnectError("x"), err(429, headers={"Retry-After": "1"}), ok()]),
        ("GET", GET, [err(500), ok("processing")]),
    )
    client, sleeps = make_async(server)
    await client.create_task(DICT_INPUT)
    assert server.count("POST") == 3 and sleeps[1] == 1.0
    assert (await client.get_task("t-1")).status is TaskStatus.PROCESSING
    server = Server(("POST", CREATE, [httpx.ReadTimeout("slow")]))
    client, _ = make_async(server)
    with pytest.raises(SubmissionUnknownError):
        await client.create_task(DICT_INPUT)
    assert server.count("POST") == 1
    await client.close()


async def test_async_client_many_waits_at_once_and_timeouts() -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.rsplit("/", 1)[-1]
        calls[task_id] = calls.get(task_id, 0) + 1
        status = "completed" if calls[task_id] >= 3 else "processing"
        return httpx.Response(200, json=envelope(status, task_id=task_id, output={"video_url": VIDEO}))

    client, _ = make_async(Server(("GET", GET, [handler])))
    done = await asyncio.gather(*(client.wait(f"t{i}") for i in range(50)))
    assert {t.task_id for t in done} == {f"t{i}" for i in range(50)}

    clock = VirtualClock()

    async def vsleep(seconds: float) -> None:
        clock.now += seconds

    client, _ = make_async(progress_server([{"status": "pending"}]))
    client._clock, client._sleep = clock, vsleep
    with pytest.raises(TaskTimeoutError):
        await client.wait("t-1", timeout=30)


# --------------------------------------------------------------------------- polling strategies


def test_fixed_and_exponential_poll() -> None:
    assert polling.FixedPoll(0.5).delay(10, 3, None) == 0.5
    exp = polling.ExponentialPoll(1.0, 1.5, 30.0)
    assert [exp.delay(0, n, None) for n in range(4)] == [1.0, 1.5, 2.25, 3.375]
    assert exp.delay(0, 50, None) == 30.0


def _proc(percent: float | None) -> Task:
    return Task("t", TaskStatus.PROCESSING, percent=percent)


def _times(poll: polling.PollStrategy, snapshot: Any, until: float) -> list[float]:
    """When a session polls, on a virtual clock (`snapshot(t)` is the task it sees at t)."""
    t, out = 0.0, []
    while t < until:
        t += poll.delay(t, len(out), snapshot(t))
        out.append(round(t, 6))
    return out


def test_adaptive_poll_pending_looks_once_quickly_then_keeps_a_three_second_beat() -> None:
    times = _times(polling.AdaptivePoll().session(), lambda t: Task("t", TaskStatus.PENDING), 30.0)
    assert times == [1.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0]  # the look stands in for 3 s


def test_adaptive_poll_without_percent_skips_one_beat_when_rendering_just_began() -> None:
    def task(t: float) -> Task:  # pending until 2.5 s, then rendering, no percent
        return Task("t", TaskStatus.PENDING) if t < 2.5 else _proc(None)

    times = _times(polling.AdaptivePoll().session(), task, 40.0)
    # rendering seen at 6 s: the beat at 9 s is skipped, then every beat of fixed 3 s polling,
    # at the same moments (so the video is seen exactly when fixed polling would see it)
    assert times == [1.0, 6.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0, 33.0, 36.0, 39.0, 42.0]
    fixed = _times(polling.FixedPoll(3.0), task, 40.0)
    assert set(times) - {1.0} <= set(fixed) and len(times) == len(fixed) - 1


def test_adaptive_poll_a_task_rendering_at_once_costs_no_more_than_fixed_polling() -> None:
    times = _times(polling.AdaptivePoll().session(), lambda t: _proc(None), 40.0)
    # rendering at the first look: the beat at 3 s (a tiny task is seen there), then 6 s skipped
    assert times[:4] == [1.0, 3.0, 9.0, 12.0]
    fixed = _times(polling.FixedPoll(3.0), lambda t: _proc(None), 40.0)
    assert len(times) == len(fixed) and set(times) - {1.0} <= set(fixed)


def test_adaptive_poll_keeps_the_beat_when_answers_are_slow() -> None:
    poll = polling.AdaptivePoll().session()
    pending = Task("t", TaskStatus.PENDING)
    assert poll.delay(0.0, 0, pending) == 1.0
    assert poll.delay(1.3, 1, pending) == pytest.approx(4.7)
    # a GET that took 0.4 s: the next look is still on the beat, not 3 s after the answer
    assert poll.delay(6.4, 2, pending) == pytest.approx(2.6)
    assert poll.delay(8.8, 3, pending) == pytest.approx(3.2)  # too close to 9: the next beat


def test_adaptive_poll_asks_again_soon_when_the_url_lags() -> None:
    poll = polling.AdaptivePoll().session()
    lag = Task("t", TaskStatus.COMPLETED)
    assert [poll.delay(10.0 + i, i, lag) for i in range(4)] == [1.0, 1.5, 2.25, 3.375]


def test_adaptive_poll_is_never_longer_than_max_and_sessions_are_independent() -> None:
    shared = polling.AdaptivePoll()
    a, b = shared.session(), shared.session()
    a.delay(0, 0, Task("t", TaskStatus.PENDING))
    assert a.delay(1.0, 1, _proc(1)) <= 15.0
    assert b._points == [] and shared._points == []
    for t in range(2, 100, 5):
        assert a.delay(float(t), t, _proc(1 + t / 100)) <= 15.0


def test_poll_argument_accepts_number_or_strategy() -> None:
    assert Client("k", poll=2).poll == polling.FixedPoll(2.0)
    custom = polling.ExponentialPoll()
    assert Client("k", poll=custom).poll is custom
    with pytest.raises(InvalidInputError):
        Client("k", poll="fast")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- downloads


def video_server(*replies: Any, host: str = "https://img.theapi.app/temp/") -> Server:
    return Server(("GET", host, list(replies)))


def done_task(url: str = VIDEO) -> Task:
    return parse_task(envelope("completed", output={"video_url": url}))


def test_download_sends_no_key_and_writes_atomically(tmp_path: Path) -> None:
    server = video_server(httpx.Response(200, content=MP4))
    shared = httpx.Client(transport=httpx.MockTransport(server), headers={"x-api-key": KEY})
    client = Client(KEY, http_client=shared)
    dest = tmp_path / "deep" / "er" / "clip.mp4"
    written = client.download(done_task(), dest)
    assert written == dest and dest.read_bytes() == MP4
    assert "x-api-key" not in server.requests[0].headers
    assert [p.name for p in dest.parent.iterdir()] == ["clip.mp4"]  # no temp file left
    assert (dest.stat().st_mode & 0o777) == 0o644


def test_download_follows_redirects_without_key(tmp_path: Path) -> None:
    server = Server(
        ("GET", "https://img.theapi.app/", [httpx.Response(302, headers={"location": "https://cdn.example.com/v.mp4"})]),
        ("GET", "https://cdn.example.com/", [httpx.Response(200, content=MP4)]),
    )
    client, _ = make_client(server)
    client.download(VIDEO, tmp_path / "v.mp4")
    assert len(server.requests) == 2 and all("x-api-key" not in r.headers for r in server.requests)


def test_download_refuses_non_video_and_leaves_nothing(tmp_path: Path) -> None:
    server = video_server(httpx.Response(200, content=b"<html>AccessDenied</html>" * 10))
    client, _ = make_client(server)
    dest = tmp_path / "clip.mp4"
    with pytest.raises(DownloadError) as info:
        client.download(done_task(), dest)
    assert "not a video" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_keeps_an_existing_file_when_the_new_one_is_bad(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    dest.write_bytes(MP4)
    client, _ = make_client(video_server(httpx.Response(200, content=b"garbage" * 10)))
    with pytest.raises(DownloadError):
        client.download(done_task(), dest)
    assert dest.read_bytes() == MP4 and len(list(tmp_path.iterdir())) == 1


def test_download_accepts_webm_url_string_and_a_folder(tmp_path: Path) -> None:
    client, _ = make_client(video_server(httpx.Response(200, content=WEBM)))
    written = client.download("https://img.theapi.app/temp/x.webm", tmp_path)
    assert written == tmp_path / "x.webm" and written.read_bytes() == WEBM
    client, _ = make_client(video_server(httpx.Response(200, content=MP4)))
    assert client.download(done_task(), tmp_path) == tmp_path / "t-1.mp4"


def test_download_errors(tmp_path: Path) -> None:
    client, sleeps = make_client(video_server(httpx.Response(404, text="expired")))
    with pytest.raises(DownloadError) as info:
        client.download(done_task(), tmp_path / "a.mp4")
    assert "404" in str(info.value) and sleeps == []
    with pytest.raises(DownloadError) as info:
        client.download(Task("t-9", TaskStatus.PROCESSING), tmp_path / "a.mp4")
    assert "no video URL yet" in str(info.value)
    with pytest.raises(DownloadError):
        client.download("not a url", tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_download_retries_transient_failures(tmp_path: Path) -> None:
    server = video_server(err(503), httpx.ReadError("reset"), httpx.Response(200, content=MP4))
    client, sleeps = make_client(server)
    assert client.download(done_task(), tmp_path / "v.mp4").read_bytes() == MP4
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_download_broken_stream_leaves_nothing(tmp_path: Path) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[override]
            yield MP4[:20]
            raise httpx.ReadError("connection lost mid-stream")

    client, _ = make_client(video_server(httpx.Response(200, stream=Broken())), max_retries=0)
    with pytest.raises(DownloadError):
        client.download(done_task(), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


async def test_async_download(tmp_path: Path) -> None:
    server = video_server(httpx.Response(200, content=MP4))
    shared = httpx.AsyncClient(transport=httpx.MockTransport(server), headers={"x-api-key": KEY})
    client = AsyncClient(KEY, http_client=shared)
    path = await client.download(done_task(), tmp_path / "a" / "v.mp4")
    assert path.read_bytes() == MP4 and "x-api-key" not in server.requests[0].headers
    client, _ = make_async(video_server(httpx.Response(200, content=b"nope" * 10)))
    with pytest.raises(DownloadError):
        await client.download(done_task(), tmp_path / "b.mp4")
    assert not (tmp_path / "b.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


# --------------------------------------------------------------------------- upload mode

UPLOAD = "https://upload.theapi.app/api/ephemeral_resource"


def upload_reply(request: httpx.Request) -> httpx.Response:
    name = json.loads(request.content)["file_name"]
    return httpx.Response(200, json={"code": 200, "message": "success", "data": {"url": f"https://img.theapi.app/ephemeral/{name}"}})


def test_upload_mode_uploads_bytes_and_sends_urls() -> None:
    server = Server(("POST", UPLOAD, [upload_reply]), ("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    start = image(b"start-bytes", "image/jpeg")
    end = ImageSource(url="https://example.com/end.png")
    client.create_task(make_input(start, end, image_encoding="upload"))
    uploads = [r for r in server.requests if str(r.url) == UPLOAD]
    assert len(uploads) == 1  # the URL image is passed through, not uploaded
    sent = json.loads(uploads[0].content)
    name = hashlib.sha256(b"start-bytes").hexdigest()[:16] + ".jpg"  # the image's own stable name
    assert sent == {"file_name": name, "file_data": base64.b64encode(b"start-bytes").decode()}
    assert uploads[0].headers["x-api-key"] == KEY  # PiAPI's own upload host
    body = json.loads(server.requests[-1].content)
    assert body["input"]["start_image"] == f"https://img.theapi.app/ephemeral/{name}"
    assert body["input"]["end_image"] == "https://example.com/end.png"


def test_upload_403_falls_back_to_inline_base64_with_a_notice(caplog: pytest.LogCaptureFixture) -> None:
    server = Server(("POST", UPLOAD, [err(403, "Insufficient plan level")]), ("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    start, end = image(b"\x89PNG start"), image(b"\x89PNG end")
    with caplog.at_level(logging.WARNING, logger="framepack_widgets"):
        assert client.create_task(make_input(start, end, image_encoding="upload")).task_id == "t-1"
    sent = json.loads(server.requests[-1].content)["input"]
    assert sent["start_image"] == base64.b64encode(b"\x89PNG start").decode()
    assert sent["end_image"] == base64.b64encode(b"\x89PNG end").decode()
    assert server.count("POST", UPLOAD) == 1  # refused once: the end image is not even tried
    notices = [r.getMessage() for r in caplog.records if "inline" in r.getMessage()]
    assert len(notices) == 1 and "Insufficient plan level" in notices[0] and "\n" not in notices[0]
    client.create_task(make_input(start, image_encoding="upload"))  # later runs go inline at once
    assert server.count("POST", UPLOAD) == 1 and len([r for r in caplog.records if "inline" in r.getMessage()]) == 1


def test_upload_403_for_an_image_too_large_to_inline_says_uploads_need_a_paid_plan(monkeypatch) -> None:
    from framepack_widgets.client import _uploads

    monkeypatch.setattr(_uploads, "INLINE_IMAGE_LIMIT", 8)
    server = Server(("POST", UPLOAD, [err(403, "Insufficient plan level")]), ("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    with pytest.raises(AuthenticationError) as info:
        client.create_task(make_input(image(), image_encoding="upload"))
    assert "paid" in str(info.value) and "base64" in str(info.value)
    assert server.count("POST", CREATE) == 0


def test_upload_403_in_a_200_envelope_also_falls_back() -> None:
    refused = httpx.Response(200, json={"code": 403, "message": "Insufficient plan level"})
    server = Server(("POST", UPLOAD, [refused]), ("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    assert client.create_task(make_input(image(), image_encoding="upload")).task_id == "t-1"
    assert not json.loads(server.requests[-1].content)["input"]["start_image"].startswith("http")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("3fa1c2e9.jpg", "3fa1c2e9.jpg"),
        ("photo.JPEG", "photo.jpeg"),
        ("my photo (1).webp", "my_photo_1.webp"),
        ("x" * 300 + ".png", "x" * 124 + ".png"),
        (".png", "image.png"),
        ("scan.tiff", None),
        ("noextension", None),
        ("clip.mp4", None),  # the endpoint takes videos, but never as an input image
    ],
)
def test_upload_file_names_follow_the_documented_rules(name: str, expected: str | None) -> None:
    from framepack_widgets.client._uploads import upload_file_name

    got = upload_file_name(name)
    assert got == expected
    if got is not None:
        assert len(got) <= 128


def test_upload_url_follows_base_url() -> None:
    server = Server(
        ("POST", "http://127.0.0.1:9/api/ephemeral_resource", [upload_reply]),
        ("POST", "http://127.0.0.1:9/api/v1/task", [ok()]),
    )
    client = Client(KEY, base_url="http://127.0.0.1:9", http_client=httpx.Client(transport=httpx.MockTransport(server)))
    client.create_task(make_input(image(), image_encoding="upload"))
    assert [r.url.path for r in server.requests] == ["/api/ephemeral_resource", "/api/v1/task"]


def test_upload_mode_with_the_real_framepack_input() -> None:
    inputs = pytest.importorskip("framepack_widgets.inputs")
    pil = pytest.importorskip("PIL.Image")
    server = Server(("POST", UPLOAD, [upload_reply]), ("POST", CREATE, [ok()]))
    client, _ = make_client(server)
    value = inputs.FramepackInput("a cat", pil.new("RGB", (16, 16)), image_encoding="upload")
    client.create_task(value)
    body = json.loads(server.requests[-1].content)
    assert body["input"]["start_image"].startswith("https://img.theapi.app/ephemeral/")


async def test_async_upload_mode() -> None:
    server = Server(("POST", UPLOAD, [upload_reply]), ("POST", CREATE, [ok()]))
    client, _ = make_async(server)
    await client.create_task(make_input(image(), image(b"e"), image_encoding="upload"))
    assert server.count("POST", UPLOAD) == 2 and server.count("POST", CREATE) == 1


def test_key_is_redacted_from_task_errors() -> None:
    failed = envelope("failed", error={"code": 1, "message": f"bad header x-api-key={KEY}"})
    server = Server(("GET", GET, [httpx.Response(200, json=failed)]))
    client, _ = make_client(server)
    with pytest.raises(TaskFailedError) as info:
        client.wait("t-1")
    assert KEY not in str(info.value) and "x-api-key=***" in str(info.value)


# --------------------------------------------------------------------------- expected-duration hint


def _schedule(poll: polling.PollStrategy, until: float, task: Any = None) -> list[tuple[float, float]]:
    """(time, delay) pairs a session asks for, on a virtual clock, while the task keeps running."""
    snapshot = task if task is not None else _proc(None)
    out: list[tuple[float, float]] = []
    t = 0.0
    while t < until:
        d = poll.delay(t, len(out), snapshot(t) if callable(snapshot) else snapshot)
        out.append((t, d))
        t += d
    return out


def test_hint_polls_rarely_early_and_densely_near_the_expected_end() -> None:
    poll = polling.AdaptivePoll().session(expected_seconds=60.0)
    schedule = _schedule(poll, 90.0)
    # an estimate off by up to 20 % puts the end between 60/1.2 = 50 s and 60/0.8 = 75 s
    early = [d for t, d in schedule if t < 50.0]
    near = [d for t, d in schedule if 50.0 <= t <= 75.0]
    assert len(early) <= 6 and early[0] >= 10.0 - 1e-9  # a few long sleeps before the window
    assert max(early) <= polling.AdaptivePoll().hint_max
    assert near and max(near) <= 1.5  # dense around the expected end
    assert all(b <= a for a, b in zip(early, early[1:]))  # delays shrink towards the end
    # it arrives at the window's opening exactly, not late
    assert any(abs(t - 50.0) < 1e-9 for t, _ in schedule)


def test_hint_also_applies_while_pending() -> None:
    poll = polling.AdaptivePoll().session(expected_seconds=100.0)
    assert poll.delay(0.0, 0, Task("t", TaskStatus.PENDING)) == 10.0  # hint_max, not the 1 s first look
    assert polling.AdaptivePoll().session().delay(0.0, 0, Task("t", TaskStatus.PENDING)) == 1.0


def test_without_a_hint_behaviour_is_unchanged() -> None:
    for task in (_proc(None), Task("t", TaskStatus.PENDING), None):
        plain = _schedule(polling.AdaptivePoll().session(), 200.0, task)
        none = _schedule(polling.AdaptivePoll().session(expected_seconds=None), 200.0, task)
        assert plain == none
    delays = [d for _, d in _schedule(polling.AdaptivePoll().session(expected_seconds=None), 60.0)]
    assert delays[:3] == [1.0, 2.0, 6.0] and set(delays[3:]) == {3.0}  # the first look, then the beat


def test_percent_overrides_the_hint() -> None:
    # processing at 5 %/s after 2 s of pending; the hint (wrongly) says 300 s.
    def snapshot(t: float) -> Task:
        if t < 2.0:
            return Task("t", TaskStatus.PENDING)
        return _proc(min(99, int((t - 2.0) * 5)))

    hinted = _schedule(polling.AdaptivePoll().session(expected_seconds=300.0), 30.0, snapshot)
    # once percent shows up, the delays match a session without a hint (percent-based ETA)
    plain = polling.AdaptivePoll().session()
    t_first_percent = next(t for t, _ in hinted if t >= 2.0)
    replay = []
    for t, d in hinted:
        if t < 2.0:
            plain.delay(t, 0, snapshot(t))
            continue
        replay.append((t, plain.delay(t, 0, snapshot(t))))
    assert [d for t, d in hinted if t >= t_first_percent] == [d for _, d in replay]
    # and it finds the end (~22 s) promptly, not at the hinted 240-360 s window
    assert max(d for t, d in hinted if t >= 2.0) < 15.0


@pytest.mark.parametrize("expected, true_end", [(10.0, 200.0), (20.0, 600.0), (0.0, 60.0)])
def test_a_too_short_estimate_costs_few_extra_gets(expected: float, true_end: float) -> None:
    schedule = _schedule(polling.AdaptivePoll().session(expected_seconds=expected), true_end)
    delays = [d for _, d in schedule]
    assert min(delays) >= 0.5  # never a storm
    late = [d for t, d in schedule if t > expected / 0.8 + 2.0]
    assert late == sorted(late) and max(late) <= 5.0  # grows gently, to a cap
    blind = _schedule(polling.AdaptivePoll().session(), true_end)
    assert len(schedule) <= len(blind) + 8  # a few more GETs than no hint at all
    assert len(schedule) <= true_end / 3 + 10  # far fewer than polling every second


@pytest.mark.parametrize("expected, true_end", [(600.0, 20.0), (200.0, 60.0)])
def test_a_too_long_estimate_costs_bounded_delay(expected: float, true_end: float) -> None:
    schedule = _schedule(polling.AdaptivePoll().session(expected_seconds=expected), true_end)
    seen_at = schedule[-1][0] + schedule[-1][1]  # the first GET at or after the true end
    assert seen_at - true_end <= polling.AdaptivePoll().hint_max
    assert len(schedule) <= true_end / 5 + 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0])
def test_unusable_hints_are_ignored_or_clamped(bad: float) -> None:
    poll = polling.AdaptivePoll().session(expected_seconds=bad)
    if bad < 0:
        assert poll._expected == 0.0
    else:
        assert poll._expected is None


def _hinted_server(length: float, clock: VirtualClock) -> Server:
    def answer(request: httpx.Request) -> httpx.Response:
        if clock.now >= length:
            return ok("completed", output={"video_url": VIDEO})
        return ok("processing")

    return Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [answer]))


def test_wait_passes_the_hint_to_the_poll_session() -> None:
    clock = VirtualClock()
    server = _hinted_server(61.3, clock)
    client, _ = make_client(server)
    client._clock, client._sleep = clock, clock.sleep
    assert client.wait(parse_task(envelope("pending")), expected_seconds=60.0).status is TaskStatus.COMPLETED
    hinted_gets, hinted_delay = server.count("GET"), clock.now - 61.3

    clock2 = VirtualClock()
    server2 = _hinted_server(61.3, clock2)
    client2, _ = make_client(server2)
    client2._clock, client2._sleep = clock2, clock2.sleep
    client2.wait(parse_task(envelope("pending")))
    assert hinted_delay <= 1.5 and hinted_delay < clock2.now - 61.3
    assert hinted_gets < server2.count("GET")


def test_wait_rejects_a_non_number_hint_before_anything_is_sent() -> None:
    server = Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [ok("completed", output={"video_url": VIDEO})]))
    client, _ = make_client(server)
    with pytest.raises(InvalidInputError):
        client.wait("t-1", expected_seconds="soon")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        client.generate(DICT_INPUT, expected_seconds="soon")  # type: ignore[arg-type]
    assert server.requests == []


class _Recording(polling.PollStrategy):
    def __init__(self) -> None:
        self.sessions: list[Any] = []

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return 1.0

    def session(self, expected_seconds: float | None = None) -> polling.PollStrategy:
        self.sessions.append(expected_seconds)
        return self


class _OldStyle(polling.PollStrategy):
    """A custom strategy written before the hint existed: session() takes no arguments."""

    def __init__(self) -> None:
        self.sessions = 0

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return 1.0

    def session(self) -> polling.PollStrategy:  # type: ignore[override]
        self.sessions += 1
        return self


class _NoSession:
    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return 1.0


def test_custom_strategies_with_and_without_the_hint_keep_working() -> None:
    done = ok("completed", output={"video_url": VIDEO})
    for strategy in (_Recording(), _OldStyle(), _NoSession()):
        server = Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [ok("processing"), done]))
        client, sleeps = make_client(server, poll=strategy)
        assert client.wait("t-1", expected_seconds=30.0).status is TaskStatus.COMPLETED
        assert sleeps == [1.0]
    recording = _Recording()
    server = Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [done]))
    client, _ = make_client(server, poll=recording)
    client.wait("t-1", expected_seconds=30.0)
    client.wait("t-1")
    assert recording.sessions == [30.0, None]
    old = _OldStyle()
    client, _ = make_client(Server(("GET", GET, [done])), poll=old)
    client.wait("t-1", expected_seconds=30.0)
    assert old.sessions == 1


def test_generate_passes_the_hint_minus_the_create_time() -> None:
    clock = VirtualClock()

    def slow_create(request: httpx.Request) -> httpx.Response:
        clock.now += 4
        return ok("pending")

    recording = _Recording()
    server = Server(("POST", CREATE, [slow_create]), ("GET", GET, [ok("completed", output={"video_url": VIDEO})]))
    client, _ = make_client(server, poll=recording)
    client._clock, client._sleep = clock, clock.sleep
    client.generate(DICT_INPUT, expected_seconds=30.0)
    client.generate(DICT_INPUT)
    assert recording.sessions == [pytest.approx(26.0), None]


async def test_async_wait_and_generate_pass_the_hint() -> None:
    recording = _Recording()
    done = ok("completed", output={"video_url": VIDEO})
    server = Server(("POST", CREATE, [ok("pending")]), ("GET", GET, [ok("processing"), done]))
    client, sleeps = make_async(server, poll=recording)
    async with client:
        await client.wait("t-1", expected_seconds=12.5)
        await client.generate(DICT_INPUT, expected_seconds=40.0)
    assert recording.sessions[0] == 12.5 and 39.0 < recording.sessions[1] <= 40.0
    assert sleeps == [1.0, 1.0]


def test_a_refused_create_says_what_to_check_a_refused_read_does_not() -> None:
    server = Server(("POST", CREATE, [err(400, "duration out of range")]), ("GET", GET, [err(400, "bad id")]))
    client, _ = make_client(server)
    with pytest.raises(BadRequestError) as created:
        client.create_task(DICT_INPUT)
    assert "duration (10 to 30 s)" in str(created.value)
    with pytest.raises(BadRequestError) as read:
        client.get_task("t-1")
    assert "duration" not in str(read.value) and "bad id" in str(read.value)
