"""The offline simulator over real loopback HTTP, checked with plain httpx.

Clocks are chosen so states are deterministic (pending_seconds=1000 keeps a task pending,
processing_seconds=0 completes it as soon as its video is rendered). Renders share one
module workdir, so each distinct clip is rendered once for the whole file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from framepack_widgets.constants import UPLOAD_BASE64_LIMIT
from framepack_widgets.simulator import (
    DEFAULT_PENDING_SECONDS,
    Fault,
    Simulator,
    default_processing_seconds,
)
from framepack_widgets.simulator import _render
from framepack_widgets.simulator._faults import FaultBook
from framepack_widgets.task import Task, TaskStatus, parse_time

MODEL = "Qubico/framepack"
ZERO = "0001-01-01T00:00:00Z"
RFC3339_NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
REMOVE = object()


# ----------------------------------------------------------------------------- images


def _picture(seed: int, size: tuple[int, int] = (480, 360)) -> "object":
    """A structured test picture (gradient + coloured blocks), so motion is measurable."""
    import numpy as np
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 255, yy / h * 255, (1 - xx / w) * 255 * (seed % 2)], axis=-1)
    for _ in range(14):
        x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
        bw, bh = rng.integers(20, 90), rng.integers(20, 90)
        base[y0 : y0 + bh, x0 : x0 + bw] = rng.integers(0, 256, 3)
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def _encode(image: "object", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)  # type: ignore[attr-defined]
    return out.getvalue()


START = _picture(1)
END = _picture(2)
START_BYTES = _encode(START)
END_BYTES = _encode(END)
START_B64 = base64.b64encode(START_BYTES).decode()
END_B64 = base64.b64encode(END_BYTES).decode()
PROMPT = "The camera zooms in slowly on a colourful wall"


def _body(**changes: object) -> dict:
    given = {
        "prompt": PROMPT,
        "negative_prompt": "blur, distortion",
        "start_image": START_B64,
        "end_image": END_B64,
        "duration": 10,
    }
    for key, value in changes.items():
        if value is REMOVE:
            given.pop(key, None)
        else:
            given[key] = value
    return {
        "model": MODEL,
        "task_type": "img2video",
        "input": given,
        "config": {"service_mode": "public", "webhook_config": {"endpoint": "", "secret": ""}},
    }


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("simulator-work")


@pytest.fixture
def make_sim(workdir: Path):
    started: list[Simulator] = []

    def make(**kwargs: object) -> Simulator:
        kwargs.setdefault("workdir", workdir)
        sim = Simulator(**kwargs).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def _client(sim: Simulator, *, key: str | None | bool = True, **kwargs: object) -> httpx.Client:
    headers = {}
    if key is True:
        headers["x-api-key"] = sim.api_key
    elif isinstance(key, str):
        headers["x-api-key"] = key
    kwargs.setdefault("timeout", 30)
    return httpx.Client(base_url=sim.base_url, headers=headers, **kwargs)  # type: ignore[arg-type]


def _wait(client: httpx.Client, task_id: str, done, timeout: float = 60) -> dict:
    """Poll until `done(data)`; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/task/{task_id}")
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if done(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} stuck in {data['status']} ({data['output']})")
        time.sleep(0.02)


def _create(client: httpx.Client, **changes: object) -> dict:
    response = client.post("/api/v1/task", json=_body(**changes))
    assert response.status_code == 200, response.text
    return response.json()["data"]


DATA_KEYS = {"task_id", "model", "task_type", "status", "config", "input", "output", "meta", "detail", "logs",
             "error"}
META_KEYS = {"created_at", "started_at", "ended_at", "usage", "is_using_private_pool"}


def _check_common(data: dict, status: str) -> None:
    assert set(data) == DATA_KEYS
    assert data["model"] == MODEL and data["task_type"] == "img2video" and data["status"] == status
    assert data["detail"] is None
    assert set(data["meta"]) == META_KEYS
    assert data["meta"]["is_using_private_pool"] is False
    assert RFC3339_NANOS.match(data["meta"]["created_at"])
    assert data["config"] == {"service_mode": "public", "webhook_config": {"endpoint": "", "secret": ""}}
    echo = data["input"]
    assert echo["prompt"] == PROMPT and echo["negative_prompt"] == "blur, distortion" and echo["duration"] == 10
    assert echo["start_image"] == f"<base64 image, {len(START_BYTES)} bytes>"
    assert echo["end_image"] == f"<base64 image, {len(END_BYTES)} bytes>"
    assert isinstance(data["logs"], list) and all(isinstance(line, str) for line in data["logs"])


# ----------------------------------------------------------------------------- basics


def test_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, framepack_widgets.simulator as s; s.Simulator; s.Fault;"
        "print([m for m in ('av', 'numpy', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_and_repr_hide_the_key() -> None:
    sim = Simulator()
    assert sim.api_key.startswith("sim-") and len(sim.api_key) > 12
    assert Simulator().api_key != sim.api_key
    assert sim.api_key not in repr(sim)
    assert DEFAULT_PENDING_SECONDS == 3.0
    assert default_processing_seconds(10) + DEFAULT_PENDING_SECONDS < 60
    with pytest.raises(RuntimeError, match="start"):
        sim.base_url
    with pytest.raises(ValueError):
        Simulator(time_scale=0)


@pytest.mark.parametrize("profile, blank", [("realistic", None), ("rich", {"video_url": ""})])
def test_pending_envelope_is_exactly_the_reference_shape(make_sim, profile: str, blank: object) -> None:
    sim = make_sim(pending_seconds=1000, profile=profile)
    with _client(sim) as client:
        response = client.post("/api/v1/task", json=_body())
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        envelope = response.json()
        assert set(envelope) == {"code", "message", "data"}
        assert envelope["code"] == 200 and envelope["message"] == "success"
        created = envelope["data"]
        for data in (created, client.get(f"/api/v1/task/{created['task_id']}").json()["data"]):
            _check_common(data, "pending")
            assert data["output"] == blank
            assert data["meta"]["started_at"] == ZERO and data["meta"]["ended_at"] == ZERO
            assert data["meta"]["usage"] == {"type": "point", "frozen": 3_000_000, "consume": 0}
            assert data["logs"] == []
            assert data["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}
        task = Task.from_data(created)
        assert task.status is TaskStatus.PENDING and task.started_at is None and task.video_url is None
        assert sim.task_status(created["task_id"]) == "pending"


def test_realistic_processing_envelope_has_no_percent_no_output_and_no_logs(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=4, time_scale=2)
    assert sim.profile == "realistic"  # the default
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        data = _wait(client, task_id, lambda d: d["status"] == "processing")
        _check_common(data, "processing")
        assert data["output"] is None and data["logs"] == []
        assert RFC3339_NANOS.match(data["meta"]["started_at"]) and data["meta"]["ended_at"] == ZERO
        task = Task.from_data(data)
        assert task.percent is None and task.video_url is None and task.logs == ()


def test_processing_envelope_has_percent_and_logs(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=4, time_scale=2, profile="rich")
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        data = _wait(client, task_id, lambda d: d["status"] == "processing" and d["output"]["percent"] >= 25)
        _check_common(data, "processing")
        assert set(data["output"]) == {"video_url", "percent"}
        assert data["output"]["video_url"] == ""
        assert isinstance(data["output"]["percent"], int) and 25 <= data["output"]["percent"] <= 99
        logs = data["logs"]
        assert any("loading model" in line for line in logs)
        assert any(re.fullmatch(r"sampling section 1/\d+", line) for line in logs)
        assert "camera motion from prompt: zoom in" in logs
        assert RFC3339_NANOS.match(data["meta"]["started_at"]) and data["meta"]["ended_at"] == ZERO
        assert data["meta"]["usage"] == {"type": "point", "frozen": 3_000_000, "consume": 0}
        later = _wait(client, task_id, lambda d: d["status"] != "processing" or d["output"]["percent"] > 50)
        if later["status"] == "processing":  # percent only grows, and so do the logs
            assert later["output"]["percent"] >= data["output"]["percent"]
            assert later["logs"][: len(logs)] == logs


def test_completed_envelope_and_video_download(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=0)
    with _client(sim) as client:
        created = _create(client)
        data = _wait(client, created["task_id"], lambda d: d["status"] == "completed")
    _check_common(data, "completed")
    url = f"{sim.base_url}/files/{created['task_id']}.mp4"
    assert data["output"] == {"video_url": url}
    assert data["meta"]["usage"] == {"type": "point", "frozen": 0, "consume": 3_000_000}
    assert data["logs"] == []
    assert data["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}
    created_at, started_at, ended_at = (parse_time(data["meta"][k]) for k in ("created_at", "started_at", "ended_at"))
    assert created_at and started_at and ended_at and created_at <= started_at <= ended_at
    assert Task.from_data(data).video_url == url

    video = httpx.get(url)  # no key: result files are public, like PiAPI's CDN
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content) > 1000
    assert video.content[4:8] == b"ftyp"
    assert b"moov" in video.content[:4096], "moov atom should come first (faststart)"

    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == video.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(video.content)}"
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(video.content))


def test_unknown_files_are_404(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
    assert httpx.get(f"{sim.base_url}/files/{task_id}.mp4").status_code == 404  # not finished yet
    assert httpx.get(f"{sim.base_url}/files/nothing.mp4").status_code == 404
    assert httpx.get(f"{sim.base_url}/no/such/route").status_code == 404


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_key_is_401(make_sim, key: str | None) -> None:
    sim = make_sim()
    with _client(sim, key=key if key else False) as client:
        answers = [
            client.post("/api/v1/task", json=_body()),
            client.get("/api/v1/task/whatever"),
            client.delete("/api/v1/task/whatever"),
            client.get("/account/info"),
            client.post("/api/ephemeral_resource", json={"file_name": "a.png", "file_data": START_B64}),
        ]
    for answer in answers:
        assert answer.status_code == 401
        body = answer.json()
        assert body["code"] == 401 and "x-api-key" in body["message"]
        assert sim.api_key not in answer.text
    assert sim.tasks == {}


BAD_BODIES = {
    "invalid json": b"{not json",
    "not an object": json.dumps([1, 2]).encode(),
    "wrong model": json.dumps({**_body(), "model": "Qubico/other"}).encode(),
    "wrong task_type": json.dumps({**_body(), "task_type": "txt2video"}).encode(),
    "missing input": json.dumps({"model": MODEL, "task_type": "img2video"}).encode(),
    "missing prompt": json.dumps(_body(prompt=REMOVE)).encode(),
    "blank prompt": json.dumps(_body(prompt="   ")).encode(),
    "missing start_image": json.dumps(_body(start_image=REMOVE)).encode(),
    "duration 9": json.dumps(_body(duration=9)).encode(),
    "duration 31": json.dumps(_body(duration=31)).encode(),
    "duration string": json.dumps(_body(duration="10")).encode(),
    "duration float": json.dumps(_body(duration=10.5)).encode(),
    "duration bool": json.dumps(_body(duration=True)).encode(),
    "undecodable base64": json.dumps(_body(start_image="this is not base64 !!!")).encode(),
    "base64 of not an image": json.dumps(_body(end_image=base64.b64encode(b"hello world").decode())).encode(),
    "image not a string": json.dumps(_body(start_image=12)).encode(),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_create_bodies_are_400_and_create_nothing(make_sim, name: str) -> None:
    sim = make_sim()
    with _client(sim) as client:
        answer = client.post("/api/v1/task", content=BAD_BODIES[name], headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == 400 and isinstance(body["message"], str) and body["message"]
    assert sim.tasks == {}


def test_unknown_task_is_404(make_sim) -> None:
    sim = make_sim()
    with _client(sim) as client:
        for answer in (client.get("/api/v1/task/no-such-task"), client.delete("/api/v1/task/no-such-task")):
            assert answer.status_code == 404
            assert answer.json() == {"code": 404, "message": "Record Not Found"}


def test_cancel_only_while_pending(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        answer = client.delete(f"/api/v1/task/{task_id}")
        assert answer.status_code == 200
        data = answer.json()["data"]
        assert data["status"] == "cancelled" and data["meta"]["ended_at"] != ZERO
        assert data["meta"]["usage"]["frozen"] == 0 and data["meta"]["usage"]["consume"] == 0
        assert client.get(f"/api/v1/task/{task_id}").json()["data"]["status"] == "cancelled"
        again = client.delete(f"/api/v1/task/{task_id}")
        assert again.status_code == 400 and again.json()["code"] == 400

    sim = make_sim(pending_seconds=0, processing_seconds=1000)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        _wait(client, task_id, lambda d: d["status"] == "processing")
        answer = client.delete(f"/api/v1/task/{task_id}")
        assert answer.status_code == 400
        assert answer.json()["code"] == 400 and "pending" in answer.json()["message"]
        assert client.get(f"/api/v1/task/{task_id}").json()["data"]["status"] == "processing"


def test_account_info(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=0, credits_usd=5)
    with _client(sim) as client:
        first = client.get("/account/info")
        assert first.status_code == 200 and first.json()["code"] == 200
        data = first.json()["data"]
        assert data["credits"] == 50_000_000 and data["equivalent_in_usd"] == 5
        _wait(client, _create(client)["task_id"], lambda d: d["status"] == "completed")
        after = client.get("/account/info").json()["data"]
        assert after["credits"] == 50_000_000 - 3_000_000
        assert after["equivalent_in_usd"] == pytest.approx(4.7)


def test_upload_and_use_the_url_as_an_image(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        answer = client.post("/api/ephemeral_resource", json={"file_name": "../start image.png",
                                                               "file_data": START_B64})
        assert answer.status_code == 200
        body = answer.json()
        assert body["code"] == 200 and set(body["data"]) == {"url"}
        url = body["data"]["url"]
        assert url.startswith(f"{sim.base_url}/files/") and url.endswith(".png") and ".." not in url
        fetched = httpx.get(url)  # no key needed
        assert fetched.status_code == 200 and fetched.content == START_BYTES
        assert fetched.headers["content-type"] == "image/png"

        data_uri = "data:image/png;base64," + START_B64
        answer = client.post("/api/ephemeral_resource", json={"file_name": "b.png", "file_data": data_uri})
        assert answer.status_code == 200

        created = _create(client, start_image=url, end_image=REMOVE)
        assert created["input"]["start_image"] == url and "end_image" not in created["input"]
        assert sim.tasks[created["task_id"]].notes == []  # resolved locally, not a placeholder

        # PiAPI's limit is on the base64 (10 MB), not on the bytes it decodes to.
        fits = base64.b64encode(b"\0" * (UPLOAD_BASE64_LIMIT // 4 * 3)).decode()
        assert len(fits) == UPLOAD_BASE64_LIMIT
        assert client.post("/api/ephemeral_resource", json={"file_name": "big.png", "file_data": fits}).status_code == 200
        too_big = base64.b64encode(b"\0" * (UPLOAD_BASE64_LIMIT // 4 * 3 + 1)).decode()
        big = client.post("/api/ephemeral_resource", json={"file_name": "big.bin", "file_data": too_big})
        assert big.status_code == 400 and "10 MB" in big.json()["message"]
        for bad in ({"file_name": "x.png"}, {"file_data": START_B64}, {"file_name": "x", "file_data": "!!"}):
            answer = client.post("/api/ephemeral_resource", json=bad)
            assert answer.status_code == 400 and answer.json()["code"] == 400


def test_data_uri_and_foreign_url_images(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=2, profile="rich")
    with _client(sim) as client:
        created = _create(client, start_image="data:image/png;base64," + START_B64, end_image=REMOVE)
        assert created["input"]["start_image"] == f"<base64 image, {len(START_BYTES)} bytes>"

        foreign = "https://example.com/girl.webp"
        created = _create(client, start_image=foreign, end_image=REMOVE, prompt="a girl smiling")
        assert created["input"]["start_image"] == foreign
        data = _wait(client, created["task_id"], lambda d: d["status"] != "pending" and len(d["logs"]) >= 6)
        assert any("could not fetch start_image" in line and foreign in line for line in data["logs"])
        assert "camera motion from prompt: drift" in data["logs"]


# ----------------------------------------------------------------------------- faults


def test_fault_validation_and_helpers() -> None:
    assert Fault.status(503, "create", retry_after=2) == Fault("status", "create", status=503, retry_after=2)
    assert Fault.status(429).status == 429
    assert Fault.fail_task("boom").endpoint == "create"
    with pytest.raises(ValueError):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault.status(503, "nowhere")
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(ValueError):
        Fault("slow", "get")
    with pytest.raises(ValueError):
        Fault("fail_task", "get")


def test_fault_book_counts_after_and_times() -> None:
    book = FaultBook()
    book.add(Fault.status(500, "get", after=1, times=2))
    picks = [book.pick("get") for _ in range(5)]
    assert [p.status if p else None for p in picks] == [None, 500, 500, None, None]
    assert book.pick("create") is None
    book.add(Fault.status(502, "*", times=None))
    assert all(book.pick(endpoint).status == 502 for endpoint in ("create", "download", "account"))
    assert book.pick(None) is None
    book.clear()
    assert book.pick("get") is None


def test_status_fault_with_retry_after_seconds_creates_no_task(make_sim) -> None:
    sim = make_sim(pending_seconds=1000, faults=[Fault.status(503, "create", retry_after=2)])
    with _client(sim) as client:
        answer = client.post("/api/v1/task", json=_body())
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["code"] == 503 and answer.json()["message"]
        assert sim.tasks == {}
        assert client.post("/api/v1/task", json=_body()).status_code == 200  # times=1
        assert len(sim.tasks) == 1
    assert [r.fault for r in sim.requests if r.endpoint == "create"] == ["status", None]
    assert [r.status for r in sim.requests if r.endpoint == "create"] == [503, 200]


def test_status_fault_with_http_date_and_runtime_injection(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        sim.inject(Fault.status(429, "get", retry_after=30, http_date=True, times=None, after=1))
        assert client.get(f"/api/v1/task/{task_id}").status_code == 200  # after=1 skips the first
        limited = client.get(f"/api/v1/task/{task_id}")
        assert limited.status_code == 429 and limited.json()["code"] == 429
        when = parsedate_to_datetime(limited.headers["retry-after"])
        assert when.tzinfo is not None and when > datetime.now(timezone.utc)
        assert client.get(f"/api/v1/task/{task_id}").status_code == 429  # times=None: forever
        assert client.get("/account/info").status_code == 200  # other endpoints untouched
        sim.clear_faults()
        assert client.get(f"/api/v1/task/{task_id}").status_code == 200


@pytest.mark.parametrize("status", [500, 502])
def test_server_error_faults_on_download_and_account(make_sim, status: int) -> None:
    sim = make_sim(faults=[Fault.status(status, "*", times=2)])
    with _client(sim) as client:
        assert client.get("/account/info").status_code == status
        assert httpx.get(f"{sim.base_url}/files/x.mp4").status_code == status
        assert client.get("/account/info").status_code == 200


def test_slow_fault_delays_the_answer(make_sim) -> None:
    sim = make_sim(faults=[Fault.slow(1.0, "account")])
    with _client(sim, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/account/info")
        assert client.get("/account/info").status_code == 200


def test_drop_before_body_creates_no_task(make_sim) -> None:
    sim = make_sim(pending_seconds=1000, faults=[Fault.drop_before_body("create")])
    with _client(sim) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/api/v1/task", json=_body())
        assert sim.count("create") == 1
        assert sim.tasks == {}
        assert client.post("/api/v1/task", json=_body()).status_code == 200
    assert len(sim.tasks) == 1 and sim.count("create") == 2


def test_drop_after_body_creates_a_task_but_answers_nothing(make_sim) -> None:
    sim = make_sim(pending_seconds=1000, faults=[Fault.drop_after_body("create")])
    with _client(sim) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/api/v1/task", json=_body())
        assert sim.count("create") == 1
        assert len(sim.tasks) == 1
        (task_id,) = sim.tasks
        assert client.get(f"/api/v1/task/{task_id}").json()["data"]["status"] == "pending"
    assert sim.requests[0].status is None and sim.requests[0].fault == "drop_after_body"


def test_malformed_json_answers(make_sim) -> None:
    sim = make_sim(pending_seconds=1000, faults=[Fault.malformed("create"), Fault.malformed("get")])
    with _client(sim) as client:
        answer = client.post("/api/v1/task", json=_body())
        assert answer.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(answer.content)
        assert len(sim.tasks) == 1  # the task exists even though the answer is garbled
        (task_id,) = sim.tasks
        garbled = client.get(f"/api/v1/task/{task_id}")
        assert garbled.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(garbled.content)
        assert client.get(f"/api/v1/task/{task_id}").json()["data"]["status"] == "pending"


@pytest.mark.parametrize("profile", ["realistic", "rich"])
def test_fail_task_fault(make_sim, profile: str) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=0.6, faults=[Fault.fail_task("GPU out of memory")],
                   profile=profile)
    with _client(sim) as client:
        failing = _create(client)["task_id"]
        fine = _create(client)["task_id"]  # times=1: only the first task fails
        data = _wait(client, failing, lambda d: d["status"] in ("failed", "completed"))
        assert data["status"] == "failed"
        assert data["error"]["code"] != 0
        assert data["error"]["message"] == "GPU out of memory" == data["error"]["raw_message"]
        assert data["output"] == ({"video_url": ""} if profile == "rich" else None)
        assert data["meta"]["usage"] == {"type": "point", "frozen": 0, "consume": 0}
        assert data["meta"]["started_at"] != ZERO and data["meta"]["ended_at"] != ZERO
        assert data["logs"][-1:] == (["error: GPU out of memory"] if profile == "rich" else [])
        task = Task.from_data(data)
        assert task.status is TaskStatus.FAILED and task.error == "GPU out of memory"
        assert _wait(client, fine, lambda d: d["status"] in ("failed", "completed"))["status"] == "completed"


# ----------------------------------------------------------------------------- clock


def test_time_scale_compresses_the_clock(make_sim) -> None:
    sim = make_sim(time_scale=100, pending_seconds=20, processing_seconds=30)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        data = _wait(client, task_id, lambda d: d["status"] == "completed")
    created, started, ended = (parse_time(data["meta"][k]) for k in ("created_at", "started_at", "ended_at"))
    assert created and started and ended
    # 20 simulated seconds pending at 100x is 0.2 s of wall time (exact: derived from the clock).
    assert (started - created).total_seconds() == pytest.approx(0.2, abs=0.002)
    assert (ended - started).total_seconds() >= 0.3 - 0.002


def test_expected_seconds_is_when_the_clock_completes_a_task(make_sim, tmp_path: Path, monkeypatch) -> None:
    assert Simulator().expected_seconds(10) == DEFAULT_PENDING_SECONDS + default_processing_seconds(10)
    assert Simulator(time_scale=2, pending_seconds=1, processing_seconds=lambda d: d).expected_seconds(12) == 6.5

    def instant(path: Path, *args: object, **kwargs: object) -> _render.RenderResult:
        Path(path).write_bytes(b"not a video")  # the clock alone decides when the task completes
        return _render.RenderResult(Path(path), 2, 2, 1, 0.0)

    monkeypatch.setattr(_render, "render_video", instant)
    sim = make_sim(time_scale=200, workdir=tmp_path)  # its own folder: no fake clip in the shared cache
    with _client(sim) as client:
        runs = {}
        for duration in (10, 30):  # 0.185 s and 0.485 s of wall time, side by side
            before = time.monotonic()
            task_id = _create(client, duration=duration)["task_id"]
            runs[task_id] = (sim.expected_seconds(duration), before, time.monotonic())
        for task_id, (expected, before, after) in runs.items():
            while True:
                sent = time.monotonic()
                data = client.get(f"/api/v1/task/{task_id}").json()["data"]
                if data["status"] == "completed":
                    break
                assert data["status"] in ("pending", "processing")
                assert sent - after < expected, "still running after expected_seconds"
                time.sleep(0.005)
            assert expected <= time.monotonic() - before < expected + 0.5
            created, ended = (parse_time(data["meta"][k]) for k in ("created_at", "ended_at"))
            assert created and ended
            # The clock's end, unless a busy machine finished the (instant) render a little later.
            assert expected - 0.002 <= (ended - created).total_seconds() < expected + 0.1


def test_processing_seconds_may_be_a_callable(make_sim) -> None:
    seen: list[int] = []

    def clock(duration: int) -> float:
        seen.append(duration)
        return 1000.0

    sim = make_sim(pending_seconds=0, processing_seconds=clock)
    with _client(sim) as client:
        task_id = _create(client, duration=12)["task_id"]
    assert seen == [12]
    assert sim.tasks[task_id].processing_seconds == 1000.0


def test_status_stays_processing_until_the_render_is_done(make_sim, monkeypatch) -> None:
    release = threading.Event()
    real = _render.render_video

    def held(*args: object, **kwargs: object):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(_render, "render_video", held)
    sim = make_sim(pending_seconds=0, processing_seconds=0, profile="rich")
    with _client(sim) as client:
        # A clip no other test renders, so it is not in the shared cache yet.
        task_id = _create(client, prompt="the camera tilts down", end_image=REMOVE)["task_id"]
        data = client.get(f"/api/v1/task/{task_id}").json()["data"]
        assert data["status"] == "processing" and data["output"]["percent"] == 99
        assert "renderer" in data["logs"][-1]
        release.set()
        assert _wait(client, task_id, lambda d: d["status"] == "completed")["output"]["video_url"]


def test_a_failed_render_fails_the_task(make_sim, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(_render, "render_video", broken)
    sim = make_sim(pending_seconds=0, processing_seconds=0)
    with _client(sim) as client:
        task_id = _create(client, prompt="the camera tilts up", end_image=REMOVE)["task_id"]
        data = _wait(client, task_id, lambda d: d["status"] != "processing")
    assert data["status"] == "failed"
    assert data["error"]["code"] != 0 and "encoder exploded" in data["error"]["message"]


def test_identical_tasks_render_once_and_many_clients_poll(make_sim) -> None:
    sim = make_sim(pending_seconds=0.3, processing_seconds=0.5)
    clients = 120

    async def one(index: int) -> str:
        async with httpx.AsyncClient(base_url=sim.base_url, headers={"x-api-key": sim.api_key},
                                     timeout=60) as client:
            answer = await client.post("/api/v1/task", json=_body())
            assert answer.status_code == 200
            task_id = answer.json()["data"]["task_id"]
            while True:
                data = (await client.get(f"/api/v1/task/{task_id}")).json()["data"]
                if data["status"] == "completed":
                    return data["output"]["video_url"]
                assert data["status"] in ("pending", "processing")
                await asyncio.sleep(0.05)

    async def all_of_them() -> list[str]:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(clients))), 120)

    urls = asyncio.run(all_of_them())
    assert len(set(urls)) == clients
    jobs = {id(task.render) for task in sim.tasks.values()}
    assert len(jobs) == 1  # one render shared by all 120 tasks
    assert sim.count("create") == clients
    assert sim.count("get") >= clients


def test_stop_closes_connections_and_removes_its_temp_folder() -> None:
    sim = Simulator().start()
    folder = sim.workdir
    assert folder is not None and folder.is_dir()
    client = _client(sim)
    assert client.get("/account/info").status_code == 200  # keep-alive connection now open
    sim.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/account/info")
    client.close()
    assert not folder.exists()
    sim.stop()  # idempotent
    with pytest.raises(RuntimeError):
        sim.start()


def test_requests_are_recorded_without_secrets(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        client.get(f"/api/v1/task/{task_id}")
        client.get("/account/info")
    records = sim.requests
    assert [(r.method, r.endpoint) for r in records] == [("POST", "create"), ("GET", "get"), ("GET", "account")]
    assert records[1].path == f"/api/v1/task/{task_id}" and records[1].status == 200
    assert all(sim.api_key not in repr(r) for r in records)


# ----------------------------------------------------------------------------- the video


def _decode_all(path_or_bytes: "Path | bytes"):
    import av

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with av.open(source) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "duration": float(stream.duration * stream.time_base) if stream.duration else None,
        }
        frames = [frame.to_image() for frame in container.decode(stream)]
    return info, frames


def _mad(a: "object", b: "object") -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def _crop(image: "object", cx: float, cy: float, size: float, out: tuple[int, int]) -> "object":
    w, h = image.size  # type: ignore[attr-defined]
    box = ((cx - size / 2) * w, (cy - size / 2) * h, (cx + size / 2) * w, (cy + size / 2) * h)
    return image.resize(out, box=box)  # type: ignore[attr-defined]


def test_result_video_is_real_h264_from_start_to_end_image(make_sim) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=0, long_side=640)  # the real size, not the tests' small one
    with _client(sim) as client:
        data = _wait(client, _create(client)["task_id"], lambda d: d["status"] == "completed")
    info, frames = _decode_all(httpx.get(data["output"]["video_url"]).content)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["rate"] == 30
    assert len(frames) == 10 * 30
    assert info["duration"] == pytest.approx(10.0, abs=1 / 30)
    assert max(info["width"], info["height"]) == 640
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    assert (info["width"], info["height"]) == (640, 480)  # 4:3 like the start image

    size = (info["width"], info["height"])
    first, last = frames[0], frames[-1]
    start, end = START.resize(size), END.resize(size)
    assert _mad(first, start) < 8, "the clip starts on the start image"
    assert _mad(last, end) < 8, "the clip ends on the end image"
    assert _mad(first, end) > 3 * _mad(first, start)
    middle = frames[len(frames) // 2]
    assert _mad(middle, start) > _mad(first, start) and _mad(middle, end) > _mad(last, end)


def test_camera_motion_follows_the_prompt(workdir: Path) -> None:
    out = (320, 240)
    clips = {}
    for motion in ("zoom_in", "zoom_out", "pan_left"):
        path = workdir / f"motion-{motion}.mp4"
        result = _render.render_video(path, START_BYTES, None, motion=motion, duration=10, long_side=320)
        assert (result.width, result.height) == out and result.frames == 300
        clips[motion] = _decode_all(path)[1]

    start = START.resize(out)
    for motion, frames in clips.items():
        assert _mad(frames[0], start) < 8, motion

    zoomed = _crop(START, 0.5, 0.5, 1 / 1.35, out)  # the centre crop grows to fill the frame
    assert _mad(clips["zoom_in"][-1], zoomed) < 10
    assert _mad(clips["pan_left"][-1], zoomed) > 2 * _mad(clips["zoom_in"][-1], zoomed)
    panned = _crop(START, 0.5 - (1 - 1 / 1.3) / 2, 0.5, 1 / 1.3, out)  # the view slid to the left edge
    assert _mad(clips["pan_left"][-1], panned) < 10
    assert _mad(clips["zoom_in"][-1], panned) > 2 * _mad(clips["pan_left"][-1], panned)
    # Zooming out shows the whole start image smaller in the middle of the frame.
    inner = clips["zoom_out"][-1].crop((int(320 * 0.13), int(240 * 0.13), int(320 * 0.87), int(240 * 0.87)))
    assert _mad(inner, START.resize(inner.size)) < 12
    assert _mad(clips["zoom_in"][150], clips["pan_left"][150]) > 5


@pytest.mark.parametrize(
    ("prompt", "motion"),
    [
        ("The camera zooms in on her face", "zoom_in"),
        ("slow zoom out over the valley", "zoom_out"),
        ("Camera pans left across the street", "pan_left"),
        ("pan to the right", "pan_right"),
        ("the camera tilts up to the sky", "tilt_up"),
        ("zoom in while panning right", "pan_right+zoom_in"),
        ("zoom out, then zoom in", "zoom_out"),
        ("a girl smiles gently", "drift"),
    ],
)
def test_detect_motion(prompt: str, motion: str) -> None:
    assert _render.detect_motion(prompt) == motion


def test_output_size_keeps_aspect_and_even_sides() -> None:
    assert _render.output_size(1920, 1080) == (640, 360)
    assert _render.output_size(1080, 1920) == (360, 640)
    assert _render.output_size(333, 333) == (640, 640)
    w, h = _render.output_size(1001, 777)
    assert w == 640 and h % 2 == 0


# ----------------------------------------------------------------------------- command line


@contextlib.contextmanager
def _command_line(*args: str):
    """`python -m framepack_widgets.simulator ARGS` until it prints how to use it: (its text,
    base_url, key, the process); killed afterwards if it is still running."""
    process = subprocess.Popen([sys.executable, "-m", "framepack_widgets.simulator", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "export" in line:
                break
        text = "".join(lines)
        match = re.search(r"export PIAPI_BASE_URL=(\S+) PIAPI_API_KEY=(\S+)", text)
        assert match, text
        yield text, match.group(1), match.group(2), process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_prints_how_to_use_it_and_stops_on_ctrl_c() -> None:
    with _command_line("--time-scale", "5") as (text, base_url, key, process):
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{base_url}/account/info", headers={"x-api-key": key}).status_code == 200
        assert httpx.get(f"{base_url}/account/info").status_code == 401
        assert "SYNTHETIC" in text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


# ----------------------------------------------------------------------------- profiles and answer shapes


def test_profile_default_environment_and_validation(monkeypatch) -> None:
    monkeypatch.delenv("FRAMEPACK_SIM_PROFILE", raising=False)
    assert Simulator().profile == "realistic"
    assert Simulator(profile="RICH").profile == "rich"
    monkeypatch.setenv("FRAMEPACK_SIM_PROFILE", "rich")
    assert Simulator().profile == "rich" and Simulator(profile="realistic").profile == "realistic"
    monkeypatch.setenv("FRAMEPACK_SIM_PROFILE", "fancy")
    with pytest.raises(ValueError, match="FRAMEPACK_SIM_PROFILE"):
        Simulator()
    with pytest.raises(ValueError, match="realistic, rich"):
        Simulator(profile="fancy")


def test_new_fault_validation() -> None:
    with pytest.raises(ValueError, match="code="):
        Fault("envelope", "create")
    with pytest.raises(ValueError, match="must be 'create'"):
        Fault("url_lag", "get", count=1)
    with pytest.raises(ValueError, match="count="):
        Fault("url_lag", "create")
    with pytest.raises(ValueError, match="unknown status"):
        Fault.status_words({"thinking": "x"})
    with pytest.raises(ValueError, match="unknown output shape"):
        Fault.output_shape("somewhere")
    assert Fault.envelope(400, "create").refuses and not Fault.envelope(500, "create").refuses
    assert not Fault.envelope(400, "create", handled=True).refuses
    book = FaultBook()
    book.add(Fault.output_shape("video", times=2))
    book.add(Fault.url_lag(3))
    assert set(book.pick_task_faults()) == {"output_shape", "url_lag"}
    assert set(book.pick_task_faults()) == {"output_shape"}
    assert book.pick_task_faults() == {} and book.pick("create") is None


def test_envelope_faults_on_create_refuse_or_make_a_task(make_sim) -> None:
    sim = make_sim(pending_seconds=1000, faults=[
        Fault.envelope(400, "create", message="prompt refused"),
        Fault.envelope(500, "create", after=1),
        Fault.envelope(500, "create", with_data=True, after=2),
    ])
    with _client(sim) as client:
        refused = client.post("/api/v1/task", json=_body())
        assert refused.status_code == 200 and refused.json() == {"code": 400, "message": "prompt refused", "data": None}
        assert sim.tasks == {}
        lost = client.post("/api/v1/task", json=_body())
        assert lost.status_code == 200 and lost.json()["code"] == 500 and lost.json()["data"] is None
        assert len(sim.tasks) == 1  # made, but the answer names no task
        named = client.post("/api/v1/task", json=_body()).json()
        assert named["code"] == 500 and named["data"]["task_id"] in sim.tasks
        task_id = named["data"]["task_id"]
        sim.inject(Fault.envelope(503, "get", message="busy"))
        assert client.get(f"/api/v1/task/{task_id}").json() == {"code": 503, "message": "busy", "data": None}
        assert client.get(f"/api/v1/task/{task_id}").json()["code"] == 200


def test_bare_reply_status_words_and_url_lag(make_sim) -> None:
    sim = make_sim(pending_seconds=0.2, processing_seconds=0, faults=[
        Fault.bare_reply(), Fault.capitalised_statuses(), Fault.url_lag(2)])
    with _client(sim) as client:
        reply = client.post("/api/v1/task", json=_body()).json()
        assert set(reply) == {"task_id", "status", "created_at"} and reply["status"] == "Pending"
        assert RFC3339_NANOS.match(reply["created_at"])
        done = _wait(client, reply["task_id"], lambda d: d["status"] not in ("Pending", "Processing"))
        assert done["status"] == "Completed" and done["output"] == {"video_url": ""}  # the URL lags
        second = client.get(f"/api/v1/task/{reply['task_id']}").json()["data"]
        assert second["output"] == {"video_url": ""}
        third = client.get(f"/api/v1/task/{reply['task_id']}").json()["data"]
        assert third["output"]["video_url"].endswith(f"/files/{reply['task_id']}.mp4")
        other = _create(client)  # the faults applied once each
        assert other["status"] == "pending" and "code" not in other


@pytest.mark.parametrize("shape", ["video_url", "video", "video_object", "video_resource", "video_list",
                                   "video_urls", "works_video", "works_resource", "nested"])
def test_every_output_shape_is_served_and_found(make_sim, shape: str) -> None:
    sim = make_sim(pending_seconds=0, processing_seconds=0, faults=[Fault.output_shape(shape)])
    with _client(sim) as client:
        task_id = _create(client)["task_id"]
        data = _wait(client, task_id, lambda d: d["status"] == "completed")
    url = f"{sim.base_url}/files/{task_id}.mp4"
    assert url in json.dumps(data["output"])
    assert Task.from_data(data).video_url == url  # the unwatermarked one, wherever it is


def test_command_line_profile_and_replay(tmp_path: Path) -> None:
    trace = Path(__file__).parent / "traces" / "luma-video-object.json"
    with _command_line("--profile", "rich", "--replay", str(trace)) as (text, base_url, key, process):
        assert "rich answers" in text and "Replaying the trace" in text
        with httpx.Client(base_url=base_url, headers={"x-api-key": key}) as client:
            created = client.post("/api/v1/task", json=_body()).json()["data"]
            assert created["task_id"] == "f7a6d8e5-249f-4a9e-a8f4-1e8af806ea15" and created["logs"] is None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    bad = subprocess.run([sys.executable, "-m", "framepack_widgets.simulator", "--port", "0", "--replay",
                          str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no trace at" in bad.stderr


def test_the_render_size_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAMEPACK_SIM_LONG_SIDE", raising=False)
    assert Simulator().long_side == 640
    monkeypatch.setenv("FRAMEPACK_SIM_LONG_SIDE", "200")
    assert Simulator().long_side == 200 and Simulator(long_side=320).long_side == 320
    monkeypatch.setenv("FRAMEPACK_SIM_LONG_SIDE", "tiny")
    with pytest.raises(ValueError, match="FRAMEPACK_SIM_LONG_SIDE"):
        Simulator()


def test_cancel_answers_on_both_routes_piapi_is_seen_with(make_sim) -> None:
    sim = make_sim(pending_seconds=1000)
    with _client(sim) as client:
        first, second = _create(client)["task_id"], _create(client)["task_id"]
        by_delete = client.delete(f"/api/v1/task/{first}")
        by_post = client.post(f"/api/v1/task/{second}/cancel")
        assert by_delete.status_code == by_post.status_code == 200
        assert by_post.json()["data"]["status"] == "cancelled"
        assert sim.count("cancel") == 2
        assert client.post("/api/v1/task/no-such-task/cancel").status_code == 404
