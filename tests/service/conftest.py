"""Fixtures of the classroom service's tests: PostgreSQL, the simulator and the service in-process.

PostgreSQL comes from Debian's package (`.ci/setup --test` installs it); its temporary
cluster starts once per session, on first use. Without it the PostgreSQL tests fail (with
the command that installs it): a missing database is not a passing test.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub import Hub  # noqa: E402
from postgres import TempCluster, find_bin  # noqa: E402

from framepack_widgets.service import Identity, ServiceOptions  # noqa: E402
from framepack_widgets.simulator import Simulator  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: run `bash .ci/setup --test` (apt-get install postgresql)")
    cluster = TempCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "service.sqlite")
    return request.getfixturevalue("pg_cluster").database()


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


@pytest.fixture
def make_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make_service(sim, **options) -> a running ServiceThread holding the simulator's key."""
    started: list[ServiceThread] = []

    def make(sim: Simulator, *, people: dict[str, Identity] | None = None, **options: Any) -> ServiceThread:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        options.setdefault("data_dir", tmp_path / f"service-{len(started)}")
        options.setdefault("budget_usd", 0.9)
        options.setdefault("max_running", 5)
        options.setdefault("port", 0)
        service = ServiceThread(ServiceOptions.from_environment(piapi_url=sim.base_url, **options),
                                PEOPLE if people is None else people)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()
    os.environ.pop("PIAPI_API_KEY", None)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=60, long_side=64) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def hub_sim() -> Iterator[Simulator]:
    """The simulator standing in for PiAPI behind the hub's service (shared by every hub test)."""
    with Simulator(time_scale=60, long_side=64) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def hub(hub_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One JupyterHub for every hub test of the session, its service `framepack` on the simulator."""
    running = Hub(tmp_path_factory.mktemp("hub"), piapi_url=hub_sim.base_url, piapi_key=hub_sim.api_key).start()
    yield running
    running.stop()
