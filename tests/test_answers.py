"""Every answer PiAPI documents (and its tools see), from the client's side, over MockTransport.

The money rule in every shape: a create whose answer is an HTTP 200 envelope with an error
`code`, a bare `{task_id, status, created_at}` reply, or an error that still names a task
never ends as "nothing was charged" while a task exists.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.errors import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TaskFailedError,
)
from framepack_widgets.runs.outcomes import hint_for
from framepack_widgets.task import TaskStatus

KEY = "sk-ANSWERS-key-never-shown-0042"
BASE = "https://api.piapi.ai"
CREATE = f"{BASE}/api/v1/task"
GET = f"{BASE}/api/v1/task/"
VIDEO = "https://img.theapi.app/temp/abc.mp4"
DICT_INPUT = {"prompt": "a cat", "start_image": "https://example.com/cat.png", "duration": 10}


def data(status: str = "pending", task_id: str = "t-1", **more: Any) -> dict:
    return {"task_id": task_id, "model": "Qubico/framepack", "task_type": "img2video", "status": status, **more}


def reply(body: Any, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers per method, in order (the last one repeats); records what was sent."""

    def __init__(self, **answers: list) -> None:
        self.answers = {method.upper(): list(replies) for method, replies in answers.items()}
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        replies = self.answers[request.method]
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def count(self, method: str) -> int:
        return sum(1 for r in self.sent if r.method == method)


def client_for(script: Script, **kwargs: Any) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    client = Client(KEY, http_client=httpx.Client(transport=httpx.MockTransport(script)), **kwargs)
    client._sleep = sleeps.append
    return client, sleeps


# --------------------------------------------------------------------------- creates: the money rule


def test_bare_create_reply_is_a_pending_task() -> None:
    script = Script(post=[reply({"task_id": "abc", "status": "pending", "created_at": "2019-08-24T14:15:22Z"})])
    client, _ = client_for(script)
    task = client.create_task(DICT_INPUT)
    assert task.task_id == "abc" and task.status is TaskStatus.PENDING and task.created_at is not None


@pytest.mark.parametrize(
    "body",
    [
        {"code": 500, "message": "internal error", "data": data("pending", task_id="kept")},
        {"code": 10002, "message": "queue is busy", "data": data("pending", task_id="kept")},
        {"code": 400, "message": "odd", "data": data("failed", task_id="kept")},
        {"code": 500, "message": "oops", "task_id": "kept", "status": "pending"},
    ],
    ids=["500-with-data", "own-code-with-data", "400-with-data", "bare-with-code"],
)
def test_a_create_answer_with_an_error_code_that_names_a_task_keeps_it(body: dict, caplog) -> None:
    script = Script(post=[reply(body)], get=[reply({"code": 200, "data": data("completed", task_id="kept",
                                                                              output={"video_url": VIDEO})})])
    client, sleeps = client_for(script)
    with caplog.at_level(logging.WARNING, logger="framepack_widgets"):
        task = client.create_task(DICT_INPUT)
    assert task.task_id == "kept" and script.count("POST") == 1 and sleeps == []
    assert any("kept" in r.getMessage() and "following" in r.getMessage() for r in caplog.records)
    if task.status is not TaskStatus.FAILED:
        assert client.wait(task).video_url == VIDEO


@pytest.mark.parametrize("status", [429, 500, 502, 503, 400, 402])
def test_an_http_error_that_names_a_task_is_followed_not_resent(status: int) -> None:
    body = {"code": status, "message": "accepted, then trouble", "data": data("pending", task_id="made")}
    script = Script(post=[reply(body, status=status, headers={"Retry-After": "1"}), reply({"code": 200, "data": data()})])
    client, sleeps = client_for(script)
    assert client.create_task(DICT_INPUT).task_id == "made"
    assert script.count("POST") == 1 and sleeps == []  # never resent, even for 429/503


@pytest.mark.parametrize(
    "body",
    [
        {"code": 500, "message": "internal error"},
        {"code": 502, "message": "bad gateway", "data": None},
        {"code": 10002, "message": "model is under maintenance", "data": None},
        {"code": -1, "message": "unknown"},
        {"code": "FAILED", "message": "?"},
    ],
    ids=["500", "502", "own-code", "negative", "text-code"],
)
def test_a_200_create_answer_with_an_error_code_and_no_task_id_is_submission_unknown(body: dict) -> None:
    script = Script(post=[reply(body), reply({"code": 200, "data": data()})])
    client, sleeps = client_for(script)
    with pytest.raises(SubmissionUnknownError) as info:
        client.create_task(DICT_INPUT)
    assert script.count("POST") == 1 and sleeps == []
    assert "may have created a task" in str(info.value)


@pytest.mark.parametrize(
    "code, cls",
    [(400, BadRequestError), (401, AuthenticationError), (402, PaymentRequiredError), (403, AuthenticationError),
     (404, NotFoundError), (422, APIStatusError)],
)
def test_a_200_create_answer_with_a_refusal_code_created_nothing(code: int, cls: type) -> None:
    script = Script(post=[reply({"code": code, "message": "refused by the api", "data": None})])
    client, sleeps = client_for(script)
    with pytest.raises(cls) as info:
        client.create_task(DICT_INPUT)
    assert type(info.value) is cls and not isinstance(info.value, SubmissionUnknownError)
    assert info.value.status_code == code and info.value.response.status_code == 200
    assert "refused by the api" in str(info.value) and f"code {code} in an HTTP 200 answer" in str(info.value)
    assert script.count("POST") == 1 and sleeps == []
    hint = hint_for(info.value, task_id=None)
    assert hint.startswith("Nothing was charged") and "task id" not in hint  # no task was ever named


def test_a_404_while_following_a_task_says_the_task_is_gone() -> None:
    assert "no longer knows this task id" in hint_for(NotFoundError("gone", status_code=404), task_id="t-1")


@pytest.mark.parametrize("code", [429, 503])
def test_a_200_create_answer_saying_429_or_503_is_retried_like_the_http_status(code: int) -> None:
    script = Script(post=[reply({"code": code, "message": "busy"}, headers={"Retry-After": "2"}),
                          reply({"code": 200, "data": data()})])
    client, sleeps = client_for(script)
    assert client.create_task(DICT_INPUT).task_id == "t-1"
    assert script.count("POST") == 2 and sleeps == [2.0]


def test_402_has_its_own_error_and_says_to_top_up() -> None:
    for answer in (reply({"code": 402, "message": "insufficient credits"}, status=402),
                   reply({"code": 402, "message": "insufficient credits"})):
        client, _ = client_for(Script(post=[answer]))
        with pytest.raises(PaymentRequiredError) as info:
            client.create_task(DICT_INPUT)
        text = str(info.value)
        assert "Top up" in text and "insufficient credits" in text and "balance" in text
        assert isinstance(info.value, APIStatusError) and info.value.status_code == 402
        assert hint_for(info.value, task_id=None).startswith("Nothing was charged")


def test_success_codes_200_0_and_words() -> None:
    for code in (200, 0, "200", "success", "OK"):
        client, _ = client_for(Script(post=[reply({"code": code, "message": "", "data": data()})]))
        assert client.create_task(DICT_INPUT).task_id == "t-1"


async def test_async_client_follows_the_same_rules() -> None:
    script = Script(post=[reply({"code": 500, "message": "x", "data": data("pending", task_id="kept")})],
                    get=[reply({"code": 200, "data": data("completed", task_id="kept", output={"video": {"url": VIDEO}})})])
    async with AsyncClient(KEY, http_client=httpx.AsyncClient(transport=httpx.MockTransport(script))) as client:
        client._sleep = _no_sleep
        task = await client.create_task(DICT_INPUT)
        assert task.task_id == "kept"
        assert (await client.wait(task)).video_url == VIDEO
    lost = Script(post=[reply({"code": 503, "message": "x"}), reply({"code": 500, "message": "lost"})])
    async with AsyncClient(KEY, http_client=httpx.AsyncClient(transport=httpx.MockTransport(lost))) as client:
        client._sleep = _no_sleep
        with pytest.raises(SubmissionUnknownError):
            await client.create_task(DICT_INPUT)
    assert lost.count("POST") == 2


async def _no_sleep(_: float) -> None:
    return None


# --------------------------------------------------------------------------- reads


@pytest.mark.parametrize(
    "code, cls",
    [(401, AuthenticationError), (403, AuthenticationError), (404, NotFoundError), (429, RateLimitError),
     (500, ServerError), (503, ServerError)],
)
def test_a_200_get_answer_with_an_error_code_is_classified_like_the_http_status(code: int, cls: type) -> None:
    client, sleeps = client_for(Script(get=[reply({"code": code, "message": "said the api"})]), max_retries=1)
    with pytest.raises(cls) as info:
        client.get_task("t-1")
    assert type(info.value) is cls and info.value.status_code == code
    transient = code in (429, 500, 503)
    assert len(sleeps) == (1 if transient else 0)  # 429 and 5xx are retried on reads


def test_a_wait_rides_out_200_envelopes_saying_429_and_5xx() -> None:
    script = Script(get=[reply({"code": 200, "data": data("processing")}), reply({"code": 500, "message": "x"}),
                         reply({"code": 429, "message": "slow down"}),
                         reply({"code": 200, "data": data("completed", output={"video_urls": [VIDEO]})})])
    client, _ = client_for(script, poll=0.5, max_retries=0)
    assert client.wait("t-1", timeout=60).video_url == VIDEO and script.count("GET") == 4


def test_a_wait_stops_on_a_200_envelope_saying_401() -> None:
    script = Script(get=[reply({"code": 200, "data": data("processing")}), reply({"code": 401, "message": "bad key"})])
    client, _ = client_for(script, poll=0.5)
    with pytest.raises(AuthenticationError):
        client.wait("t-1", timeout=60)


def test_completed_without_a_url_is_asked_again_then_names_what_it_saw() -> None:
    lagging = reply({"code": 200, "data": data("completed", output={"video_url": ""})})
    script = Script(get=[lagging, lagging, reply({"code": 200, "data": data("completed", output={"video_url": VIDEO})})])
    client, sleeps = client_for(script)
    assert client.wait("t-1").video_url == VIDEO and script.count("GET") == 3
    assert sleeps[:2] == [1.0, 1.5]  # the URL can lag: asked again soon

    never = reply({"code": 200, "data": data("completed", output={"status": 99, "works": [], "video_url": ""})})
    script = Script(get=[never])
    client, _ = client_for(script)
    with pytest.raises(APIError) as info:
        client.wait("t-1")
    assert script.count("GET") == 5  # the first look and four more
    text = str(info.value)
    assert "no video URL" in text and "status" in text and "framepack record" in text
    assert not isinstance(info.value, TaskFailedError)


def test_a_completed_task_without_a_url_passed_to_wait_is_polled() -> None:
    from framepack_widgets.task import parse_task

    task = parse_task({"code": 200, "data": data("completed")})
    script = Script(get=[reply({"code": 200, "data": data("completed", output={"video": VIDEO})})])
    client, _ = client_for(script)
    assert client.wait(task).video_url == VIDEO and script.count("GET") == 1


def test_unknown_status_is_logged_once_and_polled_on(caplog) -> None:
    script = Script(get=[reply({"code": 200, "data": data("generating")}), reply({"code": 200, "data": data("generating")}),
                         reply({"code": 200, "data": data("Succeeded", output={"video_url": VIDEO})})])
    client, _ = client_for(script, poll=0.5)
    seen: list = []
    with caplog.at_level(logging.WARNING, logger="framepack_widgets"):
        done = client.wait("t-1", on_update=seen.append)
    assert done.status is TaskStatus.COMPLETED and done.status_word == "Succeeded"
    assert [t.status_word for t in seen] == ["generating", "Succeeded"]
    notes = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(notes) == 1 and "'generating'" in notes[0]


@pytest.mark.parametrize("word", ["error", "Failed", "canceled", "CANCELLED"])
def test_final_words_end_the_wait(word: str) -> None:
    body = {"code": 200, "data": data(word, error={"code": 1, "message": "", "raw_message": "the reason"})}
    client, _ = client_for(Script(get=[reply(body)]))
    with pytest.raises(TaskFailedError) as info:
        client.wait("t-1")
    assert "the reason" in str(info.value)


def test_cancel_answered_with_a_refusal_code_raises_the_api_words() -> None:
    client, _ = client_for(Script(delete=[reply({"code": 400, "message": "only pending tasks can be cancelled"})]))
    with pytest.raises(BadRequestError) as info:
        client.cancel("t-1")
    assert "only pending tasks can be cancelled" in str(info.value)


def test_the_key_never_appears_in_envelope_errors() -> None:
    body = {"code": 401, "message": f"key {KEY} is not valid"}
    client, _ = client_for(Script(get=[reply(body)]))
    with pytest.raises(AuthenticationError) as info:
        client.get_task("t-1")
    assert KEY not in str(info.value) and KEY not in json.dumps(info.value.body)
