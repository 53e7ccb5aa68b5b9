"""What the service's tests and its benchmark share: a request body, a stand-in for the hub's
token check, and the service on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from typing import Any

from framepack_widgets.service import Identity, ServiceOptions


def png_b64(color: tuple[int, int, int] = (200, 80, 40), size: tuple[int, int] = (64, 48)) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


IMAGE = png_b64()


def create_body(prompt: str = "the camera zooms in", duration: int = 10, **extra: Any) -> dict[str, Any]:
    return {"model": "Qubico/framepack", "task_type": "img2video",
            "input": {"prompt": prompt, "start_image": IMAGE, "duration": duration, **extra},
            "config": {"service_mode": "public"}}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TokenIdentify:
    """Stands in for the hub in in-process tests: token -> Identity (the hub itself is tested in test_hub)."""

    def __init__(self, people: dict[str, Identity]) -> None:
        self.people = people

    async def __call__(self, handler: Any) -> Identity | None:
        headers = handler.request.headers
        token = headers.get("x-api-key") or headers.get("Authorization", "").partition(" ")[2].strip()
        return self.people.get(token)


PEOPLE = {"tok-alice": Identity("alice"), "tok-bob": Identity("bob"), "tok-teacher": Identity("tess", teacher=True)}


class ServiceThread:
    """The service on its own event loop in a thread, as tests drive it with blocking clients."""

    def __init__(self, options: ServiceOptions, people: dict[str, Identity]) -> None:
        from framepack_widgets.service._app import start_app

        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.running = self.loop.run_until_complete(start_app(options, identify=TokenIdentify(people)))
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                failure.append(exc)
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="framepack-service-test", daemon=True)
        self.thread.start()
        started.wait(60)
        if failure:
            raise failure[0]
        self.url = self.running.url
        self.service = self.running.service

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.call(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
