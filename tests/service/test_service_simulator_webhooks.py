"""The simulator sends PiAPI's webhook: the final envelope to `config.webhook_config.endpoint`."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from framepack_widgets.constants import MODEL
from framepack_widgets.simulator import Simulator


def _png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


class _Endpoint:
    """A tiny webhook receiver on loopback that records what it was sent."""

    def __init__(self, answer: int = 200) -> None:
        self.answer = answer
        self.received: list[tuple[dict, dict]] = []
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.arrived:
                    outer.received.append((json.loads(body), {k.lower(): v for k, v in self.headers.items()}))
                    outer.arrived.notify_all()
                self.send_response(outer.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 30) -> list[tuple[dict, dict]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} webhooks arrived, expected {count}")
                self.arrived.wait(left)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made: list[_Endpoint] = []

    def make(answer: int = 200) -> _Endpoint:
        made.append(_Endpoint(answer))
        return made[-1]

    yield make
    for item in made:
        item.close()


def _create(sim: Simulator, hook: dict | None) -> dict:
    body = {"model": MODEL, "task_type": "img2video",
            "input": {"prompt": "zoom in on the wall", "start_image": _png(), "duration": 10},
            "config": {"service_mode": "public", **({"webhook_config": hook} if hook else {})}}
    answer = httpx.post(f"{sim.base_url}/api/v1/task", json=body, headers={"x-api-key": sim.api_key})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_a_finished_task_is_posted_once_with_the_secret(endpoint) -> None:
    hook = endpoint()
    with Simulator(time_scale=40, long_side=64) as sim:
        task = _create(sim, {"endpoint": hook.url, "secret": "s3cret-value"})
        assert task["config"]["webhook_config"] == {"endpoint": hook.url, "secret": "s3cret-value"}  # echoed
        (body, headers), = hook.wait_for(1)
        assert headers["x-webhook-secret"] == "s3cret-value"
        assert isinstance(body["timestamp"], int) and abs(body["timestamp"] - time.time()) < 60
        data = body["data"]
        assert data["task_id"] == task["task_id"] and data["status"] == "completed"
        assert data["output"]["video_url"].startswith(sim.base_url)
        got = httpx.get(f"{sim.base_url}/api/v1/task/{task['task_id']}", headers={"x-api-key": sim.api_key})
        assert got.json()["data"]["status"] == "completed"  # the webhook came once the GET says so
        time.sleep(0.3)
        assert len(hook.received) == 1  # once, not on every look
        (delivery,) = sim.webhook_deliveries
        assert (delivery.status, delivery.http_status, delivery.attempts) == ("completed", 200, 1)


def test_a_cancel_is_posted_at_once_and_no_hook_no_post(endpoint) -> None:
    hook = endpoint()
    with Simulator(time_scale=1, pending_seconds=30) as sim:
        _create(sim, None)  # no webhook asked for: nothing is sent
        task = _create(sim, {"endpoint": hook.url, "secret": "x"})
        cancelled = httpx.delete(f"{sim.base_url}/api/v1/task/{task['task_id']}", headers={"x-api-key": sim.api_key})
        assert cancelled.status_code == 200
        (body, _), = hook.wait_for(1, timeout=10)
        assert body["data"]["status"] == "cancelled"
        assert len(sim.webhook_deliveries) == 1


def test_a_failing_endpoint_is_tried_again(endpoint) -> None:
    hook = endpoint(answer=503)
    with Simulator(time_scale=40, long_side=64, webhook_retry_seconds=0.05) as sim:
        _create(sim, {"endpoint": hook.url, "secret": "x"})
        hook.wait_for(4)  # the first attempt and three more
        time.sleep(0.3)
        assert len(hook.received) == 4
        (delivery,) = sim.webhook_deliveries
        assert (delivery.attempts, delivery.http_status) == (4, 503)
