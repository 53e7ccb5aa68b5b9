"""notebooks/marimo_quickstart.py under `marimo run`, driven in Debian's Chromium.

The same widget through `mo.ui.anywidget`: upload a start image (chunked to the kernel),
Generate (the status streams in, the video plays inline), a second run, then Compare plays
both side by side in lock-step. marimo is a different host for anywidget (its own model
and message plumbing, a shadow root around the widget), so the whole flow is checked here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpw_browser import (
    ARTIFACTS,
    assert_in_lock_step,
    NOTEBOOKS,
    SERVER_START_TIMEOUT,
    UI_TIMEOUT_MS,
    NotebookPage,
    assert_kernel_answered,
    click_generate,
    fast_simulator_env,
    free_port,
    need_browser,
    play_comparison_and_measure,
    select_and_compare,
    upload_start_image,
    wait_player,
    wait_stage,
)

NOTEBOOK = NOTEBOOKS / "marimo_quickstart.py"


class MarimoServer:
    """`marimo run` on a free port, offline, with its own FRAMEPACK_HOME and config folder."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "marimo.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MarimoServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIAPI_")}
        env.update(fast_simulator_env())
        env.update({
            "FRAMEPACK_HOME": str(self.workdir / "framepack_home"),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            "MARIMO_SKIP_UPDATE_CHECK": "1",
            "PYTHONUNBUFFERED": "1",
        })
        cmd = [sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--headless", "--host", "127.0.0.1",
               "--port", str(self.port), "--no-token"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"marimo exited ({self.proc.returncode}):\n{self.log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(self.url, timeout=5):
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError(f"marimo did not answer in {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "marimo-server.log").write_bytes(self.log_path.read_bytes())


@pytest.fixture(scope="module")
def marimo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarimoServer]:
    need_browser()
    pytest.importorskip("marimo", reason="marimo is in the test extra: pip install -e '.[test]'")
    server = MarimoServer(tmp_path_factory.mktemp("marimo")).start()
    try:
        yield server
    finally:
        server.stop()


def test_marimo_run_generate_play_compare(page: object, marimo_server: MarimoServer, photo: Path) -> None:
    page.goto(marimo_server.url, timeout=UI_TIMEOUT_MS)  # type: ignore[attr-defined]
    nb = NotebookPage(page, None)  # type: ignore[arg-type]  # the flows only need its page
    root = page.locator(".fpw-root").first  # type: ignore[attr-defined]
    root.wait_for(timeout=UI_TIMEOUT_MS)
    assert "synthetic" in root.locator(".fpw-badge").inner_text().lower()

    meta = upload_start_image(nb, root, photo)
    assert "1024\u00d7768" in meta, meta
    runs = []
    for prompt in ("the camera zooms in slowly on the house", "the camera pans left across the hills"):
        run_id = click_generate(nb, root, prompt)
        wait_stage(nb, root, run_id, ["completed"], idle=False)
        video = wait_player(nb, root, run_id, 10)
        state = nb.play_and_see_time_advance(video, by=0.5)
        assert state["src"] == "blob:" and not state["paused"], state
        runs.append(run_id)
    assert_kernel_answered(root)

    section = select_and_compare(nb, root, runs)
    drift = play_comparison_and_measure(nb, section, settle_s=1.0, sample_ms=3000)
    print(f"marimo comparison drift over {drift['n']} frames: median {drift['median_ms']:.1f} ms, "
          f"p90 {drift['p90_ms']:.1f} ms, max {drift['max_ms']:.1f} ms")
    assert_in_lock_step(drift)
    page.screenshot(path=str(ARTIFACTS / "marimo.png"), full_page=True)  # type: ignore[attr-defined]
