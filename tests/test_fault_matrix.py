"""The fault matrix: every fault the simulator can inject on a create, crossed with every path
that creates a task. Each cell checks the money rule (tasks made and create requests seen are
no more than it allows), what the run or the caller ends with, and that the message says
whether anything may have been charged. The matrix is printed as a table at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from framepack_widgets import cli
from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.errors import APIError, SubmissionUnknownError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import RunStage, RunStore
from framepack_widgets.simulator import Fault, Simulator

COMPLETED, UNKNOWN, REFUSED = "completed", "may have been charged", "nothing charged"
MAY_WORDS = ("may have",)
NOTHING_WORDS = ("no task was created", "nothing was charged", "nothing was sent")


#: Where a redirect points: another host, which must never see a request (the key, the body).
THIEF = "<thief>"


@dataclass(frozen=True)
class Case:
    """A fault on the create request, what it must end in, and how many tasks it may make."""

    fault: Fault | None  # None: the API cannot be reached at all
    outcome: str
    tasks_made: int  # tasks the server creates (the money rule: never more than one)

    def made_for(self, thief: str) -> Fault | None:
        """The fault, with a redirect pointed at the thief's address."""
        if self.fault is not None and self.fault.location == THIEF:
            return dataclasses.replace(self.fault, location=f"{thief}/api/v1/task")
        return self.fault


FAULTS: dict[str, Case] = {
    "connection refused": Case(None, REFUSED, 0),
    "reset before the body": Case(Fault.drop_before_body("create"), UNKNOWN, 0),
    "reset after the body": Case(Fault.drop_after_body("create"), UNKNOWN, 1),
    "429": Case(Fault.status_code(429, "create", retry_after=0), COMPLETED, 1),
    "500": Case(Fault.status_code(500, "create"), UNKNOWN, 0),
    "502": Case(Fault.status_code(502, "create"), UNKNOWN, 0),
    "503": Case(Fault.status_code(503, "create", retry_after=0), COMPLETED, 1),
    "504": Case(Fault.status_code(504, "create"), UNKNOWN, 0),
    "malformed (truncated) JSON": Case(Fault.malformed("create"), UNKNOWN, 1),
    "an HTML page with 200": Case(Fault.html("create"), UNKNOWN, 1),
    "a proxy's HTML 502": Case(Fault.html("create", status=502), UNKNOWN, 0),
    "slow answer": Case(Fault.slow(1.0, "create"), COMPLETED, 1),
    "200 + code 400 (refused)": Case(Fault.envelope(400, "create"), REFUSED, 0),
    "200 + code 500, no task named": Case(Fault.envelope(500, "create"), UNKNOWN, 1),
    "200 + code 500, task named": Case(Fault.envelope(500, "create", with_data=True), COMPLETED, 1),
    "307 redirect to another host": Case(Fault.redirect(307, "create", location=THIEF), UNKNOWN, 0),
    "308 redirect to another host": Case(Fault.redirect(308, "create", location=THIEF), UNKNOWN, 0),
    "302 redirect to another host": Case(Fault.redirect(302, "create", location=THIEF), UNKNOWN, 0),
    "a 70,000-character task id": Case(Fault.task_id("a" * 70_000), UNKNOWN, 1),
    "a task id with control chars": Case(Fault.task_id("t\x1b[2J\x07/../x y"), UNKNOWN, 1),
}
PATHS = ("Client.generate", "AsyncClient.generate", "widget Generate", "framepack generate", "framepack sweep")
RESULTS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def sim() -> Any:
    with Simulator(time_scale=100, long_side=64, render_workers=2) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def thief() -> Any:
    """Another host: a redirect points here, and nothing may ever arrive."""
    with Simulator(time_scale=100, long_side=64) as other:
        yield other


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "start.jpg"
    Image.new("RGB", (96, 64), (30, 120, 200)).save(path)
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outcome_of_exception(exc: BaseException) -> str:
    return UNKNOWN if isinstance(exc, SubmissionUnknownError) else REFUSED


async def _run_path(path: str, base_url: str, key: str, image: Path, tmp: Path,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(outcome, the message the person gets) for one create through `path`."""
    inp = FramepackInput("the camera zooms in", image, duration=10)
    if path == "Client.generate":  # a caller's httpx client that follows redirects
        with httpx.Client(follow_redirects=True) as http, Client(key, base_url=base_url, http_client=http) as client:
            client._sleep = lambda _s: None  # retries without waiting
            try:
                client.generate(inp, timeout=60)
            except APIError as exc:
                return _outcome_of_exception(exc), str(exc)
        return COMPLETED, ""
    if path == "AsyncClient.generate":
        async with httpx.AsyncClient(follow_redirects=True) as http, \
                AsyncClient(key, base_url=base_url, http_client=http) as aclient:

            async def no_wait(_s: float) -> None:
                return None

            aclient._sleep = no_wait
            try:
                await aclient.generate(inp, timeout=60)
            except APIError as exc:
                return _outcome_of_exception(exc), str(exc)
        return COMPLETED, ""
    monkeypatch.setenv("PIAPI_API_KEY", key)
    monkeypatch.setenv("PIAPI_BASE_URL", base_url)
    monkeypatch.setenv("FRAMEPACK_HOME", str(tmp / "home"))
    if path == "widget Generate":
        from framepack_widgets import FramepackWidget

        store = RunStore(tmp / "home")
        async with AsyncClient(key, base_url=base_url) as aclient:
            w = FramepackWidget(aclient, store=store, resume=False)
            w.send = lambda content, buffers=None: None  # type: ignore[method-assign]
            w.start_image = image
            w._handle_custom_msg({"type": "generate", "request_id": "r1", "prompt": "the camera zooms in"}, [])
            [run] = w.runs
            await run
            w.close()
        stored = store.get(run.run_id)
        store.close()
        stage = {RunStage.COMPLETED: COMPLETED, RunStage.SUBMISSION_UNKNOWN: UNKNOWN}.get(stored.stage, REFUSED)
        return stage, f"{stored.error} {stored.hint}"
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    if path == "framepack generate":
        argv = ["generate", str(image), "--prompt", "the camera zooms in", "-o", str(tmp / "out.mp4")]
    else:
        argv = ["sweep", str(image), "--prompt", "the camera zooms in", "--yes", "-o", str(tmp / "sweep")]
    code = await asyncio.to_thread(cli.main, argv)  # the commands run their own event loop
    outcome = {cli.EXIT_OK: COMPLETED, cli.EXIT_SUBMISSION_UNKNOWN: UNKNOWN}.get(code, REFUSED)
    if path == "framepack sweep" and outcome != COMPLETED:
        with RunStore(tmp / "home") as store:
            [run] = store.list()
            assert (run.stage is RunStage.SUBMISSION_UNKNOWN) == (outcome == UNKNOWN), run.stage
    return outcome, err.getvalue()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault_name", list(FAULTS))
async def test_a_fault_on_the_create(
    fault_name: str, path: str, sim: Simulator, thief: Simulator, image: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = FAULTS[fault_name]
    sim.clear_faults()
    tasks_before, creates_before = len(sim.tasks), sim.count("create")
    fault = case.made_for(thief.base_url)
    if fault is None:
        base_url = f"http://127.0.0.1:{_closed_port()}"
    else:
        base_url = sim.base_url
        sim.inject(fault)
    outcome, message = await _run_path(path, base_url, sim.api_key, image, tmp_path, monkeypatch)
    tasks_made = len(sim.tasks) - tasks_before
    creates_seen = sim.count("create") - creates_before
    RESULTS[(fault_name, path)] = f"{outcome} ({tasks_made} task{'s' if tasks_made != 1 else ''})"
    assert outcome == case.outcome, message
    assert thief.requests == [], "a request (the key, the create body) reached another host"
    assert tasks_made == case.tasks_made, "the money rule: at most one task, and only where the fault makes one"
    retried = case.outcome == COMPLETED and case.tasks_made == 1 and fault_name in ("429", "503")
    assert creates_seen <= (2 if retried else 1), f"{creates_seen} create requests reached the server"
    text = message.lower()
    if outcome == UNKNOWN:
        assert any(word in text for word in MAY_WORDS) and "again" in text, message
    elif outcome == REFUSED:
        assert any(word in text for word in NOTHING_WORDS), message


def test_print_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    """The matrix as a table (run the module with -s to see it; also in tests/artifacts/)."""
    if len(RESULTS) < len(FAULTS) * len(PATHS):
        pytest.skip("run with the whole module to print the matrix")
    width = max(map(len, FAULTS))
    cols = [max(len(p), *(len(RESULTS[(f, p)]) for f in FAULTS)) for p in PATHS]
    lines = ["fault".ljust(width) + " | " + " | ".join(p.ljust(c) for p, c in zip(PATHS, cols))]
    lines.append("-" * len(lines[0]))
    for name in FAULTS:
        cells = (RESULTS[(name, p)].ljust(c) for p, c in zip(PATHS, cols))
        lines.append(name.ljust(width) + " | " + " | ".join(cells))
    table = "\n".join(lines)
    out = Path(__file__).parent / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "fault_matrix.txt").write_text(table + "\n")
    with capsys.disabled():
        print("\n" + table)
        print(f"fault matrix: {len(FAULTS)} faults x {len(PATHS)} paths = {len(RESULTS)} cells")
    assert len(lines) == len(FAULTS) + 2
