"""The fault matrix of a class, beside tests/test_fault_matrix.py (PiAPI's, unchanged): every
fault on a create between a student and the class service (and behind it), crossed with the
paths a student creates by. Each cell checks how many tasks PiAPI was asked for (never more
than one: the service never resends, and the client resends only with the same
Idempotency-Key, which the service answers with the first create's outcome), what the
student ends with, and that the message says whether anything may have been charged.

The service runs in-process (the hub's token check stood in for), the simulator as PiAPI;
the faults between the two are a proxy that breaks connections or answers as a gateway would.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_fixtures import ServiceThread, free_port
from service_resetting_proxy import ResettingProxy

from framepack_widgets import Client, FramepackWidget, cli
from framepack_widgets.errors import APIError, SubmissionUnknownError
from framepack_widgets.runs import RunStage, RunStore
from framepack_widgets.service import Identity, ServiceOptions
from framepack_widgets.simulator import Fault, Simulator

COMPLETED, UNKNOWN, REFUSED = "completed", "may have been charged", "nothing charged"
MAY_WORDS = ("may have",)
NOTHING_WORDS = ("no task was created", "nothing was charged", "nothing was sent")


@dataclass(frozen=True)
class Case:
    outcome: str
    tasks_made: int  # tasks PiAPI makes for the student's one create
    proxy: str | None = None  # a ResettingProxy mode, on the first request only
    upstream: Fault | None = None  # a fault between the service and PiAPI
    setup: str | None = None  # "refused" (nothing listens), "budget" (0.10 left), "paused"


FAULTS: dict[str, Case] = {
    "reset after the create went out": Case(COMPLETED, 1, proxy="mid"),
    "the answer lost on its way back": Case(COMPLETED, 1, proxy="after"),
    "a proxy's 502 (nothing forwarded)": Case(COMPLETED, 1, proxy="bad-gateway"),
    "a proxy's 504 after the service answered": Case(COMPLETED, 1, proxy="gateway-timeout"),
    "the service unreachable": Case(REFUSED, 0, setup="refused"),
    "PiAPI's answer lost behind the service": Case(UNKNOWN, 1, upstream=Fault.drop_after_body("create")),
    "over the class budget (402)": Case(REFUSED, 0, setup="budget"),
    "the class paused (423)": Case(REFUSED, 0, setup="paused"),
}
PATHS = ("Client.generate", "widget Generate", "framepack generate")
STUDENTS = {f"tok-{i}-{j}": Identity(f"s{i}-{j}") for i in range(len(FAULTS)) for j in range(len(PATHS))}
STUDENTS["tok-teacher"] = Identity("tess", teacher=True)
RESULTS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=100, long_side=64) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def service(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    import os

    os.environ["PIAPI_API_KEY"] = sim.api_key  # the service's own key, read when it starts
    try:
        running = ServiceThread(ServiceOptions.from_environment(
            piapi_url=sim.base_url, data_dir=tmp_path_factory.mktemp("class"), budget_usd=10.0, max_running=5,
            port=0), STUDENTS)
    finally:
        del os.environ["PIAPI_API_KEY"]
    yield running
    running.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "start.jpg"
    Image.new("RGB", (96, 64), (30, 120, 200)).save(path)
    return path


def _teacher(service: ServiceThread, method: str, path: str, body: Any = None) -> None:
    answer = httpx.request(method, service.url + path, json=body, headers={"x-api-key": "tok-teacher"}, timeout=30)
    assert answer.status_code == 200, answer.text


async def _run_path(path: str, image: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(outcome, the message the student gets) for one create through `path`."""
    if path == "Client.generate":
        with Client() as client:
            client._sleep = lambda _s: None  # retries without waiting
            assert client.is_class_service
            try:
                await asyncio.to_thread(client.generate, {"prompt": "the camera zooms in",
                                                          "start_image": _b64(image)}, timeout=60)
            except SubmissionUnknownError as exc:
                return UNKNOWN, str(exc)
            except APIError as exc:
                return REFUSED, str(exc)
        return COMPLETED, ""
    if path == "widget Generate":
        store = RunStore(tmp / "home")
        widget = FramepackWidget(store=store, resume=False)
        widget.send = lambda content, buffers=None: None  # type: ignore[method-assign]
        assert widget.client.is_class_service
        widget.start_image = image
        widget._handle_custom_msg({"type": "generate", "request_id": "r1", "prompt": "the camera zooms in"}, [])
        [run] = widget.runs
        await run
        widget.close()
        await asyncio.sleep(0)
        stored = store.get(run.run_id)
        store.close()
        stage = {RunStage.COMPLETED: COMPLETED, RunStage.SUBMISSION_UNKNOWN: UNKNOWN}.get(stored.stage, REFUSED)
        return stage, f"{stored.error} {stored.hint}"
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    argv = ["generate", str(image), "--prompt", "the camera zooms in", "-o", str(tmp / "out.mp4")]
    code = await asyncio.to_thread(cli.main, argv)
    return {cli.EXIT_OK: COMPLETED, cli.EXIT_SUBMISSION_UNKNOWN: UNKNOWN}.get(code, REFUSED), err.getvalue()


def _b64(image: Path) -> str:
    import base64

    return base64.b64encode(image.read_bytes()).decode()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault_name", list(FAULTS))
async def test_a_fault_on_a_students_create(fault_name: str, path: str, sim: Simulator, service: ServiceThread,
                                            image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = FAULTS[fault_name]
    i, j = list(FAULTS).index(fault_name), PATHS.index(path)
    student = f"s{i}-{j}"
    port = int(service.url.split(":")[2].split("/")[0])
    proxy = service.call(ResettingProxy(port, case.proxy, resets=1).start()) if case.proxy else None
    base = proxy.url if proxy else f"http://127.0.0.1:{free_port() if case.setup == 'refused' else port}"
    monkeypatch.setenv("FRAMEPACK_SERVICE_URL", base + "/services/framepack")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", f"tok-{i}-{j}")
    if case.setup == "budget":
        _teacher(service, "PUT", f"teacher/api/students/{student}/budget", {"budget_usd": 0.1})
    if case.setup == "paused":
        _teacher(service, "POST", "teacher/api/class/pause")
    if case.upstream is not None:
        sim.inject(case.upstream)
    tasks_before, creates_before = len(sim.tasks), sim.count("create")
    try:
        outcome, message = await _run_path(path, image, tmp_path, monkeypatch)
    finally:
        sim.clear_faults()
        if case.setup == "paused":
            _teacher(service, "POST", "teacher/api/class/resume")
        if proxy is not None:
            service.call(proxy.stop())
    tasks_made = len(sim.tasks) - tasks_before
    RESULTS[(fault_name, path)] = f"{outcome} ({tasks_made} task{'s' if tasks_made != 1 else ''})"
    assert outcome == case.outcome, message
    assert tasks_made == case.tasks_made, "one create, at most one task"
    assert sim.count("create") - creates_before == case.tasks_made, "the service never resends to PiAPI"
    if proxy is not None:
        assert proxy.resets == 1  # the fault happened, and the create was resent past it
    text = message.lower()
    if outcome == UNKNOWN:
        assert any(word in text for word in MAY_WORDS) and "again" in text, message
        assert "teacher" in text, message  # in a class, who can look
    elif outcome == REFUSED:
        assert any(word in text for word in NOTHING_WORDS), message


def test_print_the_matrix() -> None:
    """The matrix as a table (run the module with -s to see it)."""
    if not RESULTS:
        pytest.skip("run with the matrix's cells")
    width = max(len(name) for name in FAULTS)
    lines = [f"{'fault (student -> class service -> PiAPI)':<{width}} | " + " | ".join(f"{p:<24}" for p in PATHS)]
    for name in FAULTS:
        lines.append(f"{name:<{width}} | " + " | ".join(f"{RESULTS.get((name, p), '-'):<24}" for p in PATHS))
    print("\n" + "\n".join(lines) + f"\nclass fault matrix: {len(FAULTS)} faults x {len(PATHS)} paths")
