"""Shared test setup: every test runs offline, with its own store folder and no real key."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Simulated videos render at 160 px on the long side (instead of 640): sixteen times fewer
# pixels, the same frames, clock and shapes. Set for this process and every kernel, server and
# command it starts; tests that check the real size ask for it.
os.environ.setdefault("FRAMEPACK_SIM_LONG_SIDE", "160")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: they are the slowest, and Playwright's sync API holds an event
    loop in the main thread while a browser is open."""
    items.sort(key=lambda item: "browser" in item.path.parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """With FRAMEPACK_NO_SKIPS=1 (the README's test command sets it), a skipped test fails,
    saying why it skipped: only the opt-in live-PiAPI tests may skip. A test that did not run
    (no Chromium, a missing package) is never counted as passing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("FRAMEPACK_NO_SKIPS") == "1" and item.get_closest_marker("live") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run (FRAMEPACK_NO_SKIPS=1): {reason}"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests never talk to the real PiAPI unless a live test opts in explicitly.
    monkeypatch.delenv("PIAPI_API_KEY", raising=False)
    monkeypatch.delenv("PIAPI_BASE_URL", raising=False)
    # ... nor the classroom service a JupyterHub may have configured for the server running them.
    for name in ("FRAMEPACK_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRAMEPACK_HOME", str(tmp_path_factory.mktemp("framepack_home")))
    # Everything here is loopback: a proxy from the machine would only get in the way.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def hub_sim() -> Iterator[Any]:
    """The simulator standing in for PiAPI behind the hub's class service (every hub test's)."""
    from framepack_widgets.simulator import Simulator

    with Simulator(time_scale=60, long_side=64) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def hub(hub_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One JupyterHub for the whole session (tests/service/service_hub.py): its class service
    `framepack` on the simulator, students' servers spawned as JupyterLab. The service tests
    and the browser test of a class share it."""
    here = str(Path(__file__).resolve().parent / "service")
    if here not in sys.path:
        sys.path.insert(0, here)
    from service_hub import Hub

    running = Hub(tmp_path_factory.mktemp("hub"), piapi_url=hub_sim.base_url, piapi_key=hub_sim.api_key).start()
    yield running
    running.stop()
