"""The classroom service's routes, in-process over real HTTP against the simulator.

The hub is stood in for by a token table here (the hub itself, scopes and teachers are
tested in test_hub.py); everything else is the real service: tornado, the store, the
package's AsyncClient toward the simulator.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from service_fixtures import IMAGE, create_body, free_port

from framepack_widgets import Client
from framepack_widgets.errors import PaymentRequiredError, SubmissionUnknownError
from framepack_widgets.simulator import Fault, Simulator

ALICE = {"x-api-key": "tok-alice"}
BOB = {"Authorization": "token tok-bob"}
TEACHER = {"x-api-key": "tok-teacher"}


def _post(service, path: str, headers: dict, body: object = None, **kwargs) -> httpx.Response:
    return httpx.post(service.url + path, headers=headers, json=body, timeout=60, **kwargs)


def _get(service, path: str, headers: dict, **kwargs) -> httpx.Response:
    return httpx.get(service.url + path, headers=headers, timeout=90, **kwargs)


def _finished(service, task_id: str, headers: dict = ALICE) -> dict:
    for _ in range(40):
        data = _get(service, f"api/v1/task/{task_id}?wait=10", headers).json()["data"]
        if data["status"] in ("completed", "failed", "cancelled"):
            return data
    raise AssertionError(f"task {task_id} never finished")


def test_the_package_client_works_through_it_unchanged(sim: Simulator, make_service, tmp_path) -> None:
    service = make_service(sim)
    with Client(api_key="tok-alice", base_url=service.url.rstrip("/"), poll=0.2) as client:
        task = client.wait(client.create_task({"prompt": "zoom in", "start_image": IMAGE}), timeout=60)
        assert task.video_url.startswith(service.url + "videos/")
        path = client.download(task, tmp_path / "video.mp4")  # without the credential, as the client does
        assert path.read_bytes()[4:8] == b"ftyp"
        assert client.account_info()["budget"] == {"total": 0.9, "spent": 0.3, "reserved": 0.0, "left": 0.6,
                                                     "currency": "USD"}
        assert sim.count("create") == 1


def test_over_budget_is_402_with_what_is_left_and_nothing_is_forwarded(sim: Simulator, make_service) -> None:
    service = make_service(sim, budget_usd=0.5)
    assert _post(service, "api/v1/task", ALICE, create_body(duration=10)).status_code == 200
    refused = _post(service, "api/v1/task", ALICE, create_body(duration=10))
    assert refused.status_code == 402
    body = refused.json()
    assert body["code"] == 402 and body["data"] == {"left_usd": 0.2, "asked_usd": 0.3, "budget_usd": 0.5}
    assert "teacher" in body["message"] and "nothing was charged" in body["message"]
    assert sim.count("create") == 1
    with Client(api_key="tok-alice", base_url=service.url.rstrip("/")) as client, \
            pytest.raises(PaymentRequiredError, match="Ask your teacher"):
        client.create_task({"prompt": "again", "start_image": IMAGE})


def test_the_running_cap_is_429_with_retry_after_and_the_pause_refuses(sim: Simulator, make_service) -> None:
    slow = Simulator(time_scale=1, pending_seconds=60).start()
    try:
        service = make_service(slow, max_running=1)
        assert _post(service, "api/v1/task", ALICE, create_body()).status_code == 200
        busy = _post(service, "api/v1/task", ALICE, create_body())
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
        assert busy.json()["data"]["max_running"] == 1
        assert _post(service, "api/v1/task", BOB, create_body()).status_code == 200  # the cap is per student
        assert _post(service, "teacher/api/class/pause", TEACHER).json()["data"] == {"paused": True}
        paused = _post(service, "api/v1/task", BOB, create_body(prompt="other"))
        assert paused.status_code == 423 and "paused" in paused.json()["message"]
        assert _get(service, "account/info", BOB).json()["data"]["paused"] is True
        assert slow.count("create") == 2
    finally:
        slow.stop()


def test_a_repeated_key_returns_the_same_task_even_while_in_flight(sim: Simulator, make_service) -> None:
    sim.inject(Fault.slow(0.5, "create"))  # the first create takes half a second upstream
    service = make_service(sim)
    headers = {**ALICE, "Idempotency-Key": "run-1"}
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(_post(service, "api/v1/task", headers, create_body())))
               for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["data"]["task_id"] for a in answers}) == 1
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true", "true", "true"]
    again = _post(service, "api/v1/task", headers, create_body())
    assert again.json()["data"]["task_id"] == answers[0].json()["data"]["task_id"]
    other = _post(service, "api/v1/task", headers, create_body(prompt="something else"))
    assert other.status_code == 422  # the same key for another request is a mistake, said so
    assert sim.count("create") == 1


def test_an_unknown_outcome_is_kept_never_resent_and_shown_to_the_teacher(sim: Simulator, make_service) -> None:
    sim.inject(Fault.drop_after_body("create"))  # PiAPI got it, the answer was lost
    service = make_service(sim)
    headers = {**ALICE, "Idempotency-Key": "run-2"}
    first = _post(service, "api/v1/task", headers, create_body())
    assert first.status_code == 502 and first.headers["X-Framepack-Submission"] == "unknown"
    again = _post(service, "api/v1/task", headers, create_body())
    assert again.status_code == 502 and again.headers["Idempotent-Replayed"] == "true"
    assert sim.count("create") == 1  # never resent
    unknown = _get(service, "teacher/api/unknown", TEACHER).json()["data"]
    assert [(u["owner"], u["reserved_usd"]) for u in unknown] == [("alice", 0.3)]
    assert _get(service, "account/info", ALICE).json()["data"]["budget"]["reserved"] == 0.3
    sim.inject(Fault.drop_after_body("create"))
    with Client(api_key="tok-alice", base_url=service.url.rstrip("/")) as client, \
            pytest.raises(SubmissionUnknownError):
        client.create_task({"prompt": "the client's money rule holds", "start_image": IMAGE})
    assert sim.count("create") == 2


def test_a_refusal_releases_the_price_and_frees_the_key(sim: Simulator, make_service) -> None:
    sim.inject(Fault.status_code(429, "create", retry_after=1, times=4))  # refused past the client's retries
    service = make_service(sim)
    headers = {**ALICE, "Idempotency-Key": "run-3"}
    refused = _post(service, "api/v1/task", headers, create_body())
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert _get(service, "account/info", ALICE).json()["data"]["budget"]["reserved"] == 0.0
    later = _post(service, "api/v1/task", headers, create_body())
    assert later.status_code == 200 and "Idempotent-Replayed" not in later.headers
    assert sim.count("create") == 5


def test_a_student_sees_only_their_own_tasks(sim: Simulator, make_service) -> None:
    service = make_service(sim)
    task_id = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
    for call in (lambda: _get(service, f"api/v1/task/{task_id}", BOB),
                 lambda: httpx.delete(service.url + f"api/v1/task/{task_id}", headers=BOB),
                 lambda: _post(service, f"api/v1/task/{task_id}/cancel", BOB),
                 lambda: _post(service, f"api/v1/task/{task_id}/share", BOB, {"shared": True}),
                 lambda: _get(service, f"api/v1/task/{task_id}/events", BOB)):
        answer = call()
        assert answer.status_code == 404 and answer.json() == {"code": 404, "message": "Record Not Found",
                                                               "data": None}
    assert _get(service, f"api/v1/task/{task_id}", TEACHER).status_code == 200  # teachers see all
    assert _get(service, "api/v1/task/no-such-task", ALICE).status_code == 404
    assert _get(service, "account/info", {}).status_code == 401
    assert _get(service, "account/info", {"x-api-key": "wrong"}).status_code == 401
    assert _get(service, "teacher/api/class", ALICE).status_code == 403


def test_videos_are_the_services_copy_for_the_owner_and_the_class_once_shared(sim: Simulator, make_service) -> None:
    service = make_service(sim)
    task_id = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
    data = _finished(service, task_id)
    url = data["output"]["video_url"]
    assert url.startswith(service.url + "videos/") and "sig=" in url
    assert data["class_service"] == {"owner": "alice", "shared": False, "price_usd": 0.3, "charged_usd": 0.3,
                                     "state": "completed"}
    assert httpx.get(url).content[4:8] == b"ftyp"  # the signed URL works without a credential
    ranged = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and len(ranged.content) == 10
    plain = url.split("?")[0]
    assert httpx.get(plain).status_code == 404
    assert httpx.get(plain, headers=ALICE).status_code == 200
    assert httpx.get(plain, headers=BOB).status_code == 404
    assert httpx.get(url.replace("sig=", "sig=0"), headers=BOB).status_code == 404
    assert _get(service, "gallery", BOB).json()["data"] == []
    shared = _post(service, f"api/v1/task/{task_id}/share", ALICE, {"shared": True})
    assert shared.json()["data"]["class_service"]["shared"] is True
    assert httpx.get(plain, headers=BOB).status_code == 200
    gallery = _get(service, "gallery", BOB).json()["data"]
    assert [g["task_id"] for g in gallery] == [task_id]
    sim.clear_requests()
    httpx.get(url)
    assert sim.count("download") == 0  # downloaded once, served from the service's copy
    export = _get(service, "teacher/api/gallery/export", TEACHER)
    assert export.status_code == 200 and export.headers["Content-Type"] == "application/zip"
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert "class-gallery/index.html" in names and any(n.endswith(".mp4") for n in names)


def test_a_long_poll_returns_at_the_change_and_events_stream_to_the_end(make_service) -> None:
    with Simulator(time_scale=25, long_side=64) as sim:
        service = make_service(sim)
        task_id = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
        started = time.monotonic()
        waited = _get(service, f"api/v1/task/{task_id}?wait=50", ALICE).json()["data"]
        assert waited["status"] in ("processing", "completed") and time.monotonic() - started < 45
        events = []
        with httpx.stream("GET", service.url + f"api/v1/task/{task_id}/events", headers=ALICE, timeout=90) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:])["data"]["status"])
        assert events[-1] == "completed" and len(events) >= 1
        assert _get(service, f"api/v1/task/{task_id}?wait=abc", ALICE).status_code == 400


def test_cancel_both_ways(make_service) -> None:
    with Simulator(time_scale=1, pending_seconds=60) as sim:
        service = make_service(sim)
        first = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
        second = _post(service, "api/v1/task", ALICE, create_body(prompt="two")).json()["data"]["task_id"]
        cancelled = httpx.delete(service.url + f"api/v1/task/{first}", headers=ALICE).json()["data"]
        assert cancelled["status"] == "cancelled"
        assert _post(service, f"teacher/api/tasks/{second}/cancel", TEACHER).json()["data"]["status"] == "cancelled"
        again = _post(service, f"api/v1/task/{first}/cancel", ALICE)
        assert again.status_code == 400
        assert _get(service, "account/info", ALICE).json()["data"]["budget"] == {
            "total": 0.9, "spent": 0.0, "reserved": 0.0, "left": 0.9, "currency": "USD"}


def test_the_teachers_api_edits_budgets(sim: Simulator, make_service) -> None:
    service = make_service(sim)
    assert _post(service, "api/v1/task", ALICE, create_body()).status_code == 200
    put = httpx.put(service.url + "teacher/api/students/alice/budget", headers=TEACHER, json={"budget_usd": 0.3})
    alice = put.json()["data"]
    assert (alice["name"], alice["budget_usd"], alice["own_budget"], alice["left_usd"]) == ("alice", 0.3, True, 0.0)
    assert alice["spent_usd"] + alice["reserved_usd"] == 0.3
    assert _post(service, "api/v1/task", ALICE, create_body()).status_code == 402
    classed = httpx.put(service.url + "teacher/api/class", headers=TEACHER, json={"budget_usd": 2.0}).json()["data"]
    assert classed["budget_usd"] == 2.0 and classed["default_budget_usd"] == 0.9
    assert _get(service, "account/info", BOB).json()["data"]["budget"]["total"] == 2.0
    assert httpx.put(service.url + "teacher/api/students/alice/budget", headers=TEACHER,
                     json={"budget_usd": -1}).status_code == 400
    students = {s["name"]: s for s in _get(service, "teacher/api/students", TEACHER).json()["data"]}
    assert students["alice"]["budget_usd"] == 0.3 and students["bob"]["budget_usd"] == 2.0
    tasks = _get(service, "teacher/api/tasks?owner=alice", TEACHER).json()["data"]
    assert len(tasks) == 1 and tasks[0]["prompt"] == "the camera zooms in"


def test_bad_creates_are_400_and_reserve_nothing(sim: Simulator, make_service) -> None:
    service = make_service(sim)
    for body in ({"model": "other", "task_type": "img2video", "input": {}}, create_body(duration=5),
                 {"model": "Qubico/framepack", "task_type": "img2video", "input": {"prompt": "", "start_image": IMAGE}}):
        assert _post(service, "api/v1/task", ALICE, body).status_code == 400
    assert httpx.post(service.url + "api/v1/task", headers=ALICE, content=b"not json").status_code == 400
    assert _post(service, "api/v1/task", {**ALICE, "Idempotency-Key": "x" * 300}, create_body()).status_code == 400
    assert sim.count("create") == 0
    assert _get(service, "account/info", ALICE).json()["data"]["budget"]["reserved"] == 0.0


def test_uploads_are_refused_so_the_client_sends_images_inline(sim: Simulator, make_service) -> None:
    from framepack_widgets import FramepackInput

    service = make_service(sim)
    with Client(api_key="tok-alice", base_url=service.url.rstrip("/")) as client:
        task = client.create_task(FramepackInput("zoom in", __import__("base64").b64decode(IMAGE),
                                                 image_encoding="upload"))
        assert task.task_id and sim.count("upload") == 0


def test_the_key_and_the_webhook_secret_reach_no_student(make_service) -> None:
    """A careless PiAPI echoes the key everywhere; the service's answers carry none of it."""
    with Simulator(time_scale=60, long_side=64, echo_key=True) as sim:
        service = make_service(sim)
        seen: list[bytes] = []
        created = _post(service, "api/v1/task", ALICE, create_body())
        seen.append(created.content + str(created.headers).encode())
        task_id = created.json()["data"]["task_id"]
        data = _finished(service, task_id)
        for answer in (_get(service, f"api/v1/task/{task_id}", ALICE), _get(service, "account/info", ALICE),
                       httpx.get(data["output"]["video_url"]), _post(service, "api/v1/task", ALICE, {"bad": 1})):
            seen.append(answer.content + str(answer.headers).encode())
        secret = service.service.webhook_secret.encode()
        assert all(sim.api_key.encode() not in blob and secret not in blob for blob in seen)
        assert data["config"]["webhook_config"] == {"endpoint": "", "secret": ""}


def test_webhooks_tell_the_service_at_once_and_a_wrong_secret_is_refused(make_service) -> None:
    with Simulator(time_scale=1, pending_seconds=0.2, processing_seconds=0.3, long_side=64) as sim:
        port = free_port()  # the hub's proxy would carry PiAPI's post to the service; here it goes straight there
        service = make_service(sim, port=port, webhook_url=f"http://127.0.0.1:{port}", allow_http_webhook=True)
        task_id = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
        data = _finished(service, task_id)
        assert data["status"] == "completed"
        (delivery,) = sim.webhook_deliveries
        assert delivery.http_status == 200
        assert service.service.followers.gets <= 2  # the webhook woke it: no polling beat was needed
        forged = httpx.post(service.url + "webhook/piapi", json={"data": {"task_id": task_id}},
                            headers={"x-webhook-secret": "guess"})
        assert forged.status_code == 403


def test_a_restart_keeps_everything_and_follows_on(make_service, tmp_path) -> None:
    with Simulator(time_scale=1, pending_seconds=1.0, processing_seconds=1.0, long_side=64) as sim:
        first = make_service(sim, data_dir=tmp_path / "kept")
        task_id = _post(first, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
        first.stop()
        second = make_service(sim, data_dir=tmp_path / "kept")
        data = _finished(second, task_id)
        assert data["status"] == "completed" and httpx.get(data["output"]["video_url"]).status_code == 200
        assert _get(second, "account/info", ALICE).json()["data"]["budget"]["spent"] == 0.3


def test_a_failed_task_releases_its_price_and_says_why(sim: Simulator, make_service) -> None:
    sim.inject(Fault.fail_task("GPU out of memory"))
    service = make_service(sim)
    task_id = _post(service, "api/v1/task", ALICE, create_body()).json()["data"]["task_id"]
    data = _finished(service, task_id)
    assert data["status"] == "failed" and data["error"]["message"] == "GPU out of memory"
    assert data["class_service"]["charged_usd"] == 0.0
    assert _get(service, "account/info", ALICE).json()["data"]["budget"] == {
        "total": 0.9, "spent": 0.0, "reserved": 0.0, "left": 0.9, "currency": "USD"}


def test_the_command_checks_its_options_and_wants_the_key(tmp_path) -> None:
    import subprocess
    import sys

    def run(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("PIAPI_", "JUPYTERHUB_"))}
        if key:
            env["PIAPI_API_KEY"] = key
        return subprocess.run([sys.executable, "-m", "framepack_widgets.cli", "service", "--data-dir",
                               str(tmp_path), *args], capture_output=True, text=True, timeout=60, env=env)

    no_key = run("--port", "0")
    assert no_key.returncode == 2 and "PIAPI_API_KEY is not set" in no_key.stderr
    bad_db = run("--db", "mysql://x/y", key="k" * 20)
    assert bad_db.returncode == 2 and "PostgreSQL URL" in bad_db.stderr and "k" * 20 not in bad_db.stderr


def test_options_are_checked_with_messages_that_name_them() -> None:
    from framepack_widgets.errors import InvalidInputError
    from framepack_widgets.service import ServiceOptions

    for given, words in (({"budget_usd": -1}, "--budget"), ({"max_running": 0}, "--max-running"),
                         ({"webhook_url": "http://hub.example.org"}, "https://"), ({"port": 70000}, "--port")):
        with pytest.raises(InvalidInputError, match=words):
            ServiceOptions.from_environment({}, **given)
    hub = ServiceOptions.from_environment({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10555",
                                           "JUPYTERHUB_SERVICE_PREFIX": "/services/framepack"})
    assert (hub.port, hub.prefix) == (10555, "/services/framepack/")
    hooked = ServiceOptions.from_environment({}, webhook_url="https://hub.example.org/")
    assert hooked.webhook_endpoint == "https://hub.example.org/services/framepack/webhook/piapi"
