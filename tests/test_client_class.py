"""The client in a class: a student's server on a JupyterHub whose teacher set FRAMEPACK_SERVICE_URL.

Against httpx.MockTransport standing in for the classroom service: which settings make a
client use it (and its hub token as the key), the plain-http rule for the hub's own address,
the Idempotency-Key on creates and the one exception to the money rule it allows (resend
with the same key), case by case, the service's refusals said with who to ask, and waiting
on its long poll. The real service is in tests/service/.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.constants import SIMULATOR_HEADER, SUBMISSION_HEADER
from framepack_widgets.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    UsageError,
)
from framepack_widgets.task import Task, parse_task

SERVICE = "http://127.0.0.1:8000/services/framepack"
TOKEN = "hubtoken-0123456789abcdef"
IMAGE = "https://example.org/cat.png"
BODY = {"prompt": "the camera zooms in", "start_image": IMAGE, "duration": 10}


@pytest.fixture
def in_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """A student's server: the teacher's FRAMEPACK_SERVICE_URL, the hub's token, no key."""
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", SERVICE)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")


def task(status: str = "pending", task_id: str = "t-1", **data: Any) -> dict:
    return {"code": 200, "message": "success",
            "data": {"task_id": task_id, "model": "Qubico/framepack", "task_type": "img2video", "status": status,
                     **data}}


def refusal(status: int, message: str, data: Any = None, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"code": status, "message": message, "data": data}, headers=headers)


class Service:
    """A scripted classroom service: each create answer in turn, and every request seen."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else httpx.Response(200, json=task())
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("Idempotency-Key") for r in self.requests]


def client_for(service: Service, **kwargs: Any) -> tuple[Client, list[float]]:
    client = Client(http_client=httpx.Client(transport=httpx.MockTransport(service)), **kwargs)
    slept: list[float] = []
    client._sleep = slept.append
    return client, slept


# --------------------------------------------------------------------------- which backend


def test_the_service_url_and_hub_token_make_a_class_client(in_class: None) -> None:
    service = Service()
    client, _ = client_for(service)
    assert client.is_class_service and not client.is_simulator
    assert client.base_url == SERVICE
    client.create_task(BODY)
    [request] = service.requests
    assert str(request.url) == SERVICE + "/api/v1/task"
    assert request.headers["x-api-key"] == TOKEN  # the hub token, where PiAPI takes its key
    assert "class_service=True" in repr(client) and TOKEN not in repr(client)


def test_a_key_of_ones_own_still_goes_to_piapi(in_class: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", "sk-my-own-key-1234")
    client = Client()
    assert not client.is_class_service and client.base_url == "https://api.piapi.ai"
    monkeypatch.delenv("PIAPI_API_KEY")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")  # no hub token: no class
    assert not Client().is_class_service


def test_the_service_named_as_base_url_takes_the_hub_token(in_class: None) -> None:
    assert Client(base_url=SERVICE + "/").is_class_service
    other = Client(base_url="http://127.0.0.1:9999")  # e.g. the embedded simulator: not the class
    assert not other.is_class_service and not other.has_api_key


def test_a_bad_service_url_is_said_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", "ftp://hub/services/framepack")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    with pytest.raises(InvalidInputError, match="FRAMEPACK_SERVICE_URL") as raised:
        Client()
    assert "teacher" in str(raised.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:10101/services/framepack",  # the service's own address on this machine (TLJH)
    "http://localhost:8000/services/framepack",
    "http://proxy-public/services/framepack",  # a Kubernetes service name (Zero to JupyterHub)
    "http://hub:8081/services/framepack",
    "http://proxy-public.jhub.svc.cluster.local/services/framepack",
    "http://10.0.0.7:8000/services/framepack",  # the hub's own host, as JUPYTERHUB_API_URL names it
])
def test_plain_http_to_the_hubs_own_address_is_allowed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://10.0.0.7:8081/hub/api")
    client = Client()
    assert client.is_class_service and client.base_url == url


@pytest.mark.parametrize("url", ["http://hub.example.org/services/framepack", "http://10.0.0.8:8000/services/framepack"])
def test_plain_http_elsewhere_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://10.0.0.7:8081/hub/api")
    with pytest.raises(InvalidInputError, match="hub token would travel unencrypted") as raised:
        Client()
    assert "FRAMEPACK_SERVICE_URL" in str(raised.value) and TOKEN not in str(raised.value)
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", url.replace("http://", "https://"))
    assert Client().is_class_service


def test_the_service_is_never_the_simulator(in_class: None) -> None:
    def answer(request: httpx.Request) -> httpx.Response:  # even if an answer claimed it
        return httpx.Response(200, json=task(), headers={SIMULATOR_HEADER: "1"})

    client = Client(http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    client.get_task("t-1")
    assert not client.is_simulator


# --------------------------------------------------------------------------- Idempotency-Key


def test_each_create_carries_a_key_of_its_own_or_the_run_id(in_class: None) -> None:
    service = Service()
    client, _ = client_for(service)
    client.create_task(BODY)
    client.create_task(BODY)
    client.create_task(BODY, idempotency_key="run-4f2a")
    first, second, third = service.keys
    assert first and second and first != second and third == "run-4f2a"
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        client.create_task(BODY, idempotency_key="")
    assert len(service.requests) == 3


def test_piapi_is_never_sent_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Service(httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200, json=task()))
    client = Client("sk-real-key-0001", http_client=httpx.Client(transport=httpx.MockTransport(service)))
    client._sleep = lambda _s: None
    client.create_task(BODY, idempotency_key="run-1")
    assert service.keys == [None, None]


# --------------------------------------------------------------------------- the retry rule, case by case


def unknown_502() -> httpx.Response:
    return refusal(502, "PiAPI may or may not have created this task", {"outcome": "unknown"},
                   {SUBMISSION_HEADER: "unknown"})


RESEND = {
    "reset after the request went out": httpx.ReadError("connection reset"),
    "timed out waiting for the answer": httpx.ReadTimeout("timed out"),
    "the connection closed without an answer": httpx.RemoteProtocolError("server disconnected"),
    "connection refused": httpx.ConnectError("refused"),
    "502 from the hub's proxy": refusal(502, "bad gateway"),
    "503": refusal(503, "The class service cannot reach PiAPI right now", None, {"Retry-After": "3"}),
    "504": refusal(504, "gateway timeout"),
    "409 still forwarding": refusal(409, "still being forwarded", None, {"Retry-After": "2"}),
    "429 too many running": refusal(429, "You already have 2 tasks running", {"retry_after": 5},
                                    {"Retry-After": "5"}),
}


@pytest.mark.parametrize("fault", list(RESEND))
def test_resent_with_the_same_key(fault: str, in_class: None) -> None:
    service = Service(RESEND[fault], httpx.Response(200, json=task(task_id="t-once")))
    client, slept = client_for(service)
    assert client.create_task(BODY).task_id == "t-once"
    first, second = service.keys
    assert first == second and first  # the same create, the same key: the service answers with one task
    hinted = RESEND[fault].headers.get("Retry-After") if isinstance(RESEND[fault], httpx.Response) else None
    if hinted:
        assert slept == [float(hinted)]  # Retry-After honoured


@pytest.mark.parametrize("answer, kind, words", [
    (unknown_502(), SubmissionUnknownError, "Your teacher sees it"),
    (refusal(400, "prompt is empty"), BadRequestError, "prompt is empty"),
    (refusal(402, "over budget", {"left_usd": 0.1, "asked_usd": 0.3, "budget_usd": 3.0}), PaymentRequiredError,
     "ask your teacher"),
    (refusal(422, "This Idempotency-Key was already used for a different request"), APIStatusError,
     "different request"),
    (refusal(423, "The class is paused"), APIStatusError, "paused by your teacher"),
    (refusal(401, "invalid token"), AuthenticationError, "hub token"),
    (refusal(403, "needs the scope"), AuthenticationError, "Ask your teacher"),
    (refusal(500, "the class service failed"), SubmissionUnknownError, "may have created"),
    (httpx.Response(200, text="<html>proxy</html>"), SubmissionUnknownError, "may have created"),
    (httpx.Response(307, headers={"location": "https://elsewhere.example/x"}), SubmissionUnknownError,
     "never follows"),
])
def test_never_resent(answer: httpx.Response, kind: type, words: str, in_class: None) -> None:
    service = Service(answer, httpx.Response(200, json=task()))
    client, slept = client_for(service)
    with pytest.raises(kind, match=words) as raised:
        client.create_task(BODY)
    assert len(service.requests) == 1 and slept == []
    assert TOKEN not in str(raised.value)
    if kind is not SubmissionUnknownError:
        assert "nothing was charged" in str(raised.value).lower()


def test_402_says_who_to_ask_with_the_figures(in_class: None) -> None:
    service = Service(refusal(402, "Over your class budget", {"left_usd": 0.0, "asked_usd": 0.3, "budget_usd": 3.0}))
    client, _ = client_for(service)
    with pytest.raises(PaymentRequiredError) as raised:
        client.create_task(BODY)
    assert str(raised.value).startswith(
        "Your class budget is used up ($0.00 of $3.00 left; this run costs $0.30): ask your teacher.")
    assert raised.value.status_code == 402 and raised.value.body["data"]["left_usd"] == 0.0


def test_out_of_tries_after_a_try_that_may_have_reached_it_is_unknown(in_class: None) -> None:
    service = Service(httpx.ReadError("reset"), httpx.ConnectError("refused"), httpx.ConnectError("refused"),
                      httpx.ConnectError("refused"))
    client, slept = client_for(service)
    with pytest.raises(SubmissionUnknownError, match="may have created a task") as raised:
        client.create_task(BODY)
    assert len(set(service.keys)) == 1 and len(service.requests) == 4 and len(slept) == 3
    assert "teacher" in str(raised.value) and "again" in str(raised.value)


def test_a_refusal_after_a_lost_try_counts_only_when_the_service_gave_it(in_class: None) -> None:
    said = Service(httpx.ReadError("reset"), refusal(402, "over budget", {"left_usd": 0, "asked_usd": 0.3,
                                                                          "budget_usd": 3}))
    client, _ = client_for(said)
    with pytest.raises(PaymentRequiredError):  # the service answers for the key: nothing was made
        client.create_task(BODY)
    proxy = Service(httpx.ReadError("reset"), httpx.Response(404, text="<html>no route</html>"))
    client, _ = client_for(proxy)
    with pytest.raises(SubmissionUnknownError, match="other than the class service"):
        client.create_task(BODY)


def test_out_of_tries_when_none_reached_it_nothing_was_created(in_class: None) -> None:
    service = Service(*(httpx.ConnectError("refused") for _ in range(4)))
    client, _ = client_for(service)
    with pytest.raises(APIConnectionError, match="No task was created") as raised:
        client.create_task(BODY)
    assert not isinstance(raised.value, SubmissionUnknownError)
    busy = Service(*(refusal(429, "busy", None, {"Retry-After": "1"}) for _ in range(4)))
    client, _ = client_for(busy)
    with pytest.raises(RateLimitError, match="holding new runs back"):
        client.create_task(BODY)


def test_still_forwarded_after_every_try_is_unknown(in_class: None) -> None:
    service = Service(*(refusal(409, "still being forwarded", None, {"Retry-After": "2"}) for _ in range(4)))
    client, slept = client_for(service)
    with pytest.raises(SubmissionUnknownError, match="409"):
        client.create_task(BODY)
    assert slept == [2.0, 2.0, 2.0] and len(set(service.keys)) == 1


def test_a_create_answer_that_names_a_task_is_followed(in_class: None) -> None:
    service = Service(httpx.Response(503, json=task(task_id="t-named")))
    client, _ = client_for(service)
    assert client.create_task(BODY).task_id == "t-named" and len(service.requests) == 1


def test_the_async_client_resends_with_the_same_key(in_class: None) -> None:
    service = Service(httpx.ReadError("reset"), refusal(504, "gateway timeout"), httpx.Response(200, json=task()))

    async def main() -> list[float]:
        client = AsyncClient(http_client=httpx.AsyncClient(transport=httpx.MockTransport(service)))
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        client._sleep = sleep
        assert client.is_class_service
        await client.create_task(BODY, idempotency_key="run-9")
        with pytest.raises(SubmissionUnknownError):
            service.answers = [unknown_502()]
            await client.create_task(BODY)
        return slept

    assert len(asyncio.run(main())) == 2
    assert service.keys[:3] == ["run-9"] * 3
    assert all(r.headers["x-api-key"] == TOKEN for r in service.requests)


# --------------------------------------------------------------------------- waiting and the class's routes


def test_waits_hold_each_get_at_the_service_without_sleeping(in_class: None) -> None:
    seen: list[httpx.Request] = []
    answers = [task("processing", percent=40), task("processing", percent=80),
               task("completed", output={"video_url": SERVICE + "/videos/t-1.mp4?sig=abc"})]

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answers.pop(0))

    client = Client(http_client=httpx.Client(transport=httpx.MockTransport(service)), timeout=10)
    slept: list[float] = []
    client._sleep = slept.append
    done = client.wait(pending(), timeout=600)
    assert done.video_url.endswith("sig=abc")
    assert [r.url.params.get("wait") for r in seen] == ["25", "25", "25"]
    assert all(s == 0 for s in slept)  # no sleeping between GETs
    assert all(r.extensions["timeout"]["read"] > 25 for r in seen)  # the read timeout above the wait


def pending() -> Task:
    return parse_task(task("pending"))


def test_a_server_that_does_not_hold_the_get_is_polled_once_a_second(in_class: None) -> None:
    clock = [0.0]
    answers = [task("pending"), task("pending"), task("completed", output={"video_url": SERVICE + "/v.mp4"})]

    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers.pop(0))  # at once, whatever ?wait= says

    client = Client(http_client=httpx.Client(transport=httpx.MockTransport(service)))
    slept: list[float] = []
    client._sleep = lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s))
    client._clock = lambda: clock[0]
    client.wait(pending(), timeout=600)
    assert slept == [0.0, 1.0, 1.0]  # the first held GET at once, then a second apart: no busy loop


def test_sharing_and_the_gallery_are_the_services_routes(in_class: None) -> None:
    shared = task("completed", class_service={"owner": "ana", "shared": True})
    service = Service(httpx.Response(200, json=shared),
                      httpx.Response(200, json={"code": 200, "message": "success", "data": [shared["data"]]}))
    client, _ = client_for(service)
    assert client.share_with_class("t-1").raw["class_service"]["shared"] is True
    [one] = client.class_gallery()
    assert one.task_id == "t-1"
    post, get = service.requests
    assert post.method == "POST" and str(post.url) == SERVICE + "/api/v1/task/t-1/share"
    assert json.loads(post.content) == {"shared": True} and str(get.url) == SERVICE + "/gallery"


def test_sharing_outside_a_class_is_refused_before_anything_is_sent() -> None:
    service = Service()
    client = Client("sk-real-key-0001", http_client=httpx.Client(transport=httpx.MockTransport(service)))
    with pytest.raises(UsageError, match="classroom service"):
        client.share_with_class("t-1")
    with pytest.raises(UsageError):
        client.class_gallery()
    assert service.requests == []


def test_another_students_task_is_said_as_such(in_class: None) -> None:
    client, _ = client_for(Service(refusal(404, "Record Not Found")))
    with pytest.raises(NotFoundError, match="only their own tasks"):
        client.get_task("t-someone-else")


def test_a_service_error_on_a_read_is_retried_as_before(in_class: None) -> None:
    client, slept = client_for(Service(refusal(502, "bad gateway"), httpx.Response(200, json=task())))
    assert client.get_task("t-1").task_id == "t-1" and len(slept) == 1
    with pytest.raises(ServerError, match="The class service had a server error"):
        client_for(Service(*(refusal(500, "x") for _ in range(4))))[0].get_task("t-1")


# --------------------------------------------------------------------------- one client, two event loops


def test_one_async_client_on_two_loops_keeps_a_pool_for_each() -> None:
    """JupyterLab sends a widget's messages over a kernel subshell (a thread with its own loop),
    except those sent before the subshell is up: one widget's client runs on both loops. A kept-
    alive connection of one loop used from the other raised "bound to a different event loop"."""
    import threading

    from framepack_widgets.simulator import Simulator

    with Simulator(time_scale=100, long_side=64) as sim:
        client = AsyncClient(sim.api_key, base_url=sim.base_url)
        main = asyncio.new_event_loop()
        try:
            main.run_until_complete(client.account_info())  # the main loop: its connection is kept alive
            other = asyncio.new_event_loop()
            answers: list[Any] = []

            def subshell() -> None:
                try:
                    answers.append(other.run_until_complete(client.account_info()))
                    answers.append(other.run_until_complete(client.get_task(
                        other.run_until_complete(client.create_task(BODY)))))
                except Exception as exc:  # noqa: BLE001 - reported below
                    answers.append(exc)

            thread = threading.Thread(target=subshell)
            thread.start()
            thread.join(60)
            assert not any(isinstance(a, BaseException) for a in answers), answers
            assert len(answers) == 2
            main.run_until_complete(client.account_info())  # and the main loop's pool still works
            other.run_until_complete(client.close())  # closes this loop's pool (the main loop's is not running)
            main.run_until_complete(client.close())
            other.close()
        finally:
            main.close()
