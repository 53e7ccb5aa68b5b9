"""Issue 4's promise in a real browser: a kernel restart in the middle of a run loses nothing.

A run is started from the widget, the kernel is restarted from JupyterLab's Kernel menu
while the task is processing, the cells are run again, and the new kernel's widget picks
the run up from the store by its task id: it completes, its video plays, and exactly one
task was ever created (nothing paid twice). Two backends:

- "PiAPI" (external): the simulator runs in this test process and stands in for the
  hosted API, which outlives any kernel; the Jupyter server's kernels reach it through
  PIAPI_BASE_URL and PIAPI_API_KEY, and its request log counts the create requests.
- offline (embedded): no key, the widget's own simulator inside the kernel, which keeps
  its tasks beside the run store (FRAMEPACK_HOME/simulator) so the next kernel's
  simulator finishes them, as PiAPI would.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from fpw_browser import (
    ARTIFACTS,
    STATUS_LOG_JS,
    JupyterServer,
    NotebookPage,
    click_generate,
    need_browser,
    start_server,
    status_log,
    wait_player,
    wait_stage,
)

PROCESSING_SECONDS = 30.0  # long enough to restart a kernel and rerun cells on a slow box (~10 s)
EMBEDDED_TIME_SCALE = "1.25"  # the embedded clock: a 10 s clip takes (3 + 34) / 1.25 = 30 s


@pytest.fixture(scope="module")
def simulator() -> Iterator[object]:
    from framepack_widgets.simulator import Simulator

    sim = Simulator(
        api_key="sim-restart-" + secrets.token_hex(8),
        pending_seconds=1.0,
        processing_seconds=PROCESSING_SECONDS,
    ).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def external_server(tmp_path_factory: pytest.TempPathFactory, simulator: object) -> Iterator[JupyterServer]:
    need_browser()
    env = {"PIAPI_API_KEY": simulator.api_key, "PIAPI_BASE_URL": simulator.base_url}  # type: ignore[attr-defined]
    server = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="restart-external", env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    need_browser()
    env = {"FRAMEPACK_SIM_TIME_SCALE": EMBEDDED_TIME_SCALE}
    server = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="restart-embedded", env=env)
    try:
        yield server
    finally:
        server.stop()


def restart_mid_run(nb: NotebookPage, still_processing: Callable[[], bool], shot: str) -> str:
    """Generate, restart the kernel while processing, run the cells again, see the run finish and play."""
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    run_id = click_generate(nb, root, "the camera zooms in slowly on the red house")
    wait_stage(nb, root, run_id, ["processing"], idle=True)
    assert still_processing()

    nb.restart_kernel_via_menu()
    assert still_processing(), "the task finished before the restart completed: make it longer"

    nb.clear_all_outputs()
    nb.run_all()
    root = nb.widget()
    root.wait_for()
    nb.page.evaluate("() => { window.__fpwStatusLog = []; }")
    nb.page.evaluate(STATUS_LOG_JS, root.element_handle())

    # The new kernel's widget re-attached the stored run by its task id and finished it.
    wait_stage(nb, root, run_id, ["completed"], idle=True, timeout=(PROCESSING_SECONDS + 120) * 1000)
    video = wait_player(nb, root, run_id, 10)
    state = nb.play_and_see_time_advance(video, by=0.5)
    assert abs(state["duration"] - 10) <= 0.1, state
    root.screenshot(path=str(ARTIFACTS / shot))
    stages = [e["stage"] for e in status_log(nb, run_id)]
    assert stages and stages[-1] == "completed", stages
    assert not nb.errors_in_outputs()
    return run_id


def test_run_on_the_api_survives_a_kernel_restart(page: object, external_server: JupyterServer, simulator: object) -> None:
    nb = NotebookPage(page, external_server).open_lab("quickstart.ipynb")

    def still_processing() -> bool:
        tasks = list(simulator.tasks)  # type: ignore[attr-defined]
        assert len(tasks) == 1, tasks
        return simulator.task_status(tasks[0]) == "processing"  # type: ignore[attr-defined]

    restart_mid_run(nb, still_processing, "restart_resumed.png")
    creates = [r for r in simulator.requests if r.endpoint == "create"]  # type: ignore[attr-defined]
    assert len(creates) == 1, f"{len(creates)} create requests reached the simulator: a run was paid twice"
    assert len(simulator.tasks) == 1  # type: ignore[attr-defined]


def test_offline_run_survives_a_kernel_restart(page: object, embedded_server: JupyterServer) -> None:
    from framepack_widgets.simulator._state import SimState

    nb = NotebookPage(page, embedded_server).open_lab("quickstart.ipynb")
    state_dir = embedded_server.framepack_home / "simulator"

    def tasks() -> list:
        state = SimState(state_dir)
        try:
            return state.all_tasks()
        finally:
            state.close()

    def still_processing() -> bool:
        rows = tasks()
        assert len(rows) == 1, rows
        return time.time_ns() < rows[0].finishes_ns and rows[0].cancelled_ns is None

    run_id = restart_mid_run(nb, still_processing, "restart_offline_resumed.png")
    rows = tasks()
    assert len(rows) == 1, f"{len(rows)} tasks on the embedded simulator: the run was sent twice"

    from framepack_widgets.runs import RunStore

    store = RunStore(embedded_server.framepack_home)
    try:
        assert store.count() == 1
        assert store.get(run_id).task_id == rows[0].task_id
    finally:
        store.close()
