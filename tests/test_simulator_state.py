"""The simulator's opt-in persistent state (`state_dir`): tasks outlive the process that made them.

Issue 4: a kernel dies while a run is processing on the embedded simulator; the next
kernel's simulator must serve that task by id (clock continuing in wall time, video
rendered again if it never was) so the run completes and nothing is paid twice.
Clocks are chosen so states are deterministic; waits only guard against hangs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from framepack_widgets.simulator import Fault, Simulator
from framepack_widgets.simulator import _render
from framepack_widgets.simulator.__main__ import main as simulator_main
from framepack_widgets.task import parse_time

MODEL = "Qubico/framepack"


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((10, 10, 40, 30), fill=(255 - colour[0], 255, 255 - colour[2]))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


START = _png((200, 40, 40))
END = _png((30, 60, 200))


def _body(*, prompt: str = "the camera zooms in on the red wall", duration: int = 10, start: bytes = START,
          end: bytes | None = END) -> dict:
    given = {"prompt": prompt, "negative_prompt": "blur", "duration": duration,
             "start_image": base64.b64encode(start).decode()}
    if end is not None:
        given["end_image"] = base64.b64encode(end).decode()
    return {"model": MODEL, "task_type": "img2video", "input": given}


def _client(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url, headers={"x-api-key": sim.api_key}, timeout=30)


def _create(sim: Simulator, **changes: object) -> dict:
    with _client(sim) as client:
        answer = client.post("/api/v1/task", json=_body(**changes))  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def _get(sim: Simulator, task_id: str) -> httpx.Response:
    with _client(sim) as client:
        return client.get(f"/api/v1/task/{task_id}")


def _wait(sim: Simulator, task_id: str, done, timeout: float = 90) -> dict:
    """Poll until `done(data)`; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout
    with _client(sim) as client:
        while True:
            answer = client.get(f"/api/v1/task/{task_id}")
            assert answer.status_code == 200, answer.text
            data = answer.json()["data"]
            if done(data):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} stuck in {data['status']} ({data['output']}, {data['logs'][-1:]})")
            time.sleep(0.02)


def _video_info(content: bytes) -> dict:
    import av

    with av.open(io.BytesIO(content)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {"codec": stream.codec_context.name, "rate": stream.average_rate, "frames": frames,
                "width": stream.codec_context.width, "height": stream.codec_context.height}


def _check_video(data: dict, sim: Simulator, duration: int, long_side: int) -> None:
    url = data["output"]["video_url"]
    assert url == f"{sim.base_url}/files/{data['task_id']}.mp4"  # the serving simulator's address
    answer = httpx.get(url)  # no key, like PiAPI's CDN
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    info = _video_info(answer.content)
    assert info["codec"] == "h264" and info["rate"] == 30
    assert info["frames"] == duration * 30
    assert max(info["width"], info["height"]) == long_side


def _account(sim: Simulator) -> dict:
    with _client(sim) as client:
        return client.get("/account/info").json()["data"]


@pytest.fixture
def sims():
    started: list[Simulator] = []

    def make(**kwargs: object) -> Simulator:
        sim = Simulator(**kwargs).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def _interrupted_render(*args: object, should_stop=None, **kwargs: object):
    """A render that is still running when its simulator stops (the process dies mid-render)."""
    while not should_stop():
        time.sleep(0.01)
    raise _render.RenderCancelled("the simulator stopped")


# ----------------------------------------------------------------------------- restart


def test_a_task_survives_its_simulator_and_completes_on_the_next(sims, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(_render, "render_video", _interrupted_render)
    a = sims(state_dir=state, pending_seconds=0, processing_seconds=4, time_scale=2, long_side=160, credits_usd=5,
             profile="rich")  # percent and log lines: stored with the task, so the next simulator keeps them
    created = _create(a)
    task_id = created["task_id"]
    seen = _wait(a, task_id, lambda d: d["status"] == "processing" and d["output"]["percent"] >= 25)
    a.stop()  # the kernel dies: mid-processing, its render unfinished
    assert (state / "state.sqlite3").is_file()
    assert sorted(p.name for p in (state / "images").iterdir()) == sorted(_sha(b) for b in (START, END))
    assert not any(p.suffix == ".mp4" for p in (state / "files").iterdir())

    monkeypatch.undo()  # the real renderer again, held until we have looked at the 99% state
    release = threading.Event()
    real_render = _render.render_video

    def held(*args: object, **kwargs: object):
        release.wait(60)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(_render, "render_video", held)
    # A different key and clock (time_scale 1 too): tasks are not tied to keys, and keep the clock
    # they were made with.
    b = sims(state_dir=state, api_key="another-key", pending_seconds=1000, processing_seconds=1000)
    try:
        first = _get(b, task_id)
        assert first.status_code == 200, first.text
        data = first.json()["data"]
        assert data["status"] == "processing"
        # The clock went on in wall time (it did not restart when B loaded the task).
        assert data["output"].get("percent", 100) >= seen["output"]["percent"]
        for key in ("created_at", "started_at"):
            assert data["meta"][key] == seen["meta"][key]
        assert data["input"] == created["input"]
        # The clock has run out but the video was never rendered: B renders it again, meanwhile 99%.
        busy = _wait(b, task_id, lambda d: "renderer is still busy" in d["logs"][-1])
        assert busy["status"] == "processing" and busy["output"]["percent"] == 99
    finally:
        release.set()
    done = _wait(b, task_id, lambda d: d["status"] == "completed")
    _check_video(done, b, 10, 160)  # re-rendered with the task's own settings
    created_at, started_at, ended_at = (parse_time(done["meta"][k]) for k in ("created_at", "started_at", "ended_at"))
    assert created_at and started_at and ended_at
    assert (ended_at - started_at).total_seconds() >= 4 / 2 - 0.01  # A's processing_seconds at A's time_scale
    assert b.count("create") == 0 and list(b.tasks) == [task_id]
    account = _account(b)  # the ledger is the folder's: A's starting balance, charged once
    assert account["credits"] == 50_000_000 - 3_000_000 and account["frozen_credits"] == 0
    for _ in range(3):
        _get(b, task_id)
    assert _account(b)["credits"] == 50_000_000 - 3_000_000


def test_a_task_of_a_killed_process_is_served_in_process(sims, tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "framepack_widgets.simulator", "--state-dir", str(state), "--port", "0",
         "--pending-seconds", "0", "--processing-seconds", "3", "--api-key", "sim-child-key"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "export" in line:
                break
        text = "".join(lines)
        assert str(state) in text  # it says where tasks are kept
        base_url = re.search(r"PIAPI_BASE_URL=(\S+)", text).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=base_url, headers={"x-api-key": "sim-child-key"}, timeout=30) as client:
            answer = client.post("/api/v1/task", json=_body(prompt="the camera pans left", end=None))
            assert answer.status_code == 200, answer.text
            task_id = answer.json()["data"]["task_id"]
            assert client.get(f"/api/v1/task/{task_id}").json()["data"]["status"] == "processing"
        process.send_signal(signal.SIGKILL)  # no clean shutdown: like a dead kernel
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    fresh = sims(state_dir=state)
    assert fresh.api_key != "sim-child-key"
    done = _wait(fresh, task_id, lambda d: d["status"] == "completed")
    _check_video(done, fresh, 10, fresh.long_side)
    assert done["input"]["prompt"] == "the camera pans left"
    assert _get(fresh, str(uuid.uuid4())).status_code == 404


def test_two_simulators_over_one_folder_serve_each_others_tasks(sims, tmp_path: Path) -> None:
    state = tmp_path / "shared"
    a = sims(state_dir=state, pending_seconds=1000)
    b = sims(state_dir=state, pending_seconds=0, processing_seconds=0, long_side=160)

    on_a = _create(a)["task_id"]
    assert _get(b, on_a).json()["data"]["status"] == "pending"
    with _client(b) as client:  # cancelled through B ...
        answer = client.delete(f"/api/v1/task/{on_a}")
        assert answer.status_code == 200 and answer.json()["data"]["status"] == "cancelled"
    assert _get(a, on_a).json()["data"]["status"] == "cancelled"  # ... and A knows
    with _client(a) as client:
        assert client.delete(f"/api/v1/task/{on_a}").status_code == 400

    on_b = _create(b, prompt="the camera tilts up", end=None)["task_id"]
    done = _wait(a, on_b, lambda d: d["status"] == "completed")
    _check_video(done, a, 10, 160)  # A serves B's video from its own address
    _check_video(_wait(b, on_b, lambda d: d["status"] == "completed"), b, 10, 160)

    # Many creates at once through both: the folder stays consistent, every id served by both.
    ids: list[str] = []
    lock = threading.Lock()

    def create(sim: Simulator) -> None:
        task_id = _create(sim, prompt="a quiet lake")["task_id"]
        with lock:
            ids.append(task_id)

    threads = [threading.Thread(target=create, args=(sim,)) for sim in (a, b) * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(ids)) == 16
    for task_id in ids:
        assert _get(a, task_id).status_code == 200 and _get(b, task_id).status_code == 200
    assert _account(a) == _account(b)


def test_faults_cancels_and_render_failures_are_kept(sims, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    a = sims(state_dir=state, pending_seconds=0, processing_seconds=0.5, long_side=160,
             faults=[Fault.fail_task("GPU out of memory")])
    failing = _create(a)["task_id"]
    pending_a = sims(state_dir=state, pending_seconds=1000)
    cancelled = _create(pending_a, end=None)["task_id"]
    with _client(pending_a) as client:
        assert client.delete(f"/api/v1/task/{cancelled}").status_code == 200

    def broken(*args: object, **kwargs: object):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(_render, "render_video", broken)
    unrenderable = _create(a, prompt="the camera tilts down", start=END, end=None)["task_id"]
    assert _wait(a, unrenderable, lambda d: d["status"] != "processing")["status"] == "failed"
    a.stop()
    pending_a.stop()
    monkeypatch.undo()

    b = sims(state_dir=state)
    data = _wait(b, failing, lambda d: d["status"] in ("failed", "completed"))
    assert data["status"] == "failed" and data["error"]["message"] == "GPU out of memory"
    assert _get(b, cancelled).json()["data"]["status"] == "cancelled"
    # A failed render stays failed (the same answer from every simulator), not re-rendered.
    data = _get(b, unrenderable).json()["data"]
    assert data["status"] == "failed" and "encoder exploded" in data["error"]["message"]
    assert _account(b)["spent_in_usd"] == 0  # nothing completed, nothing charged


def test_lost_input_images_fail_the_task_with_a_clear_message(sims, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(_render, "render_video", _interrupted_render)
    a = sims(state_dir=state, pending_seconds=0, processing_seconds=0, long_side=160)
    task_id = _create(a, end=None)["task_id"]
    a.stop()
    monkeypatch.undo()
    for path in (state / "images").iterdir():
        path.unlink()
    b = sims(state_dir=state)
    data = _wait(b, task_id, lambda d: d["status"] != "processing")
    assert data["status"] == "failed"
    assert "no longer in the simulator's state folder" in data["error"]["message"]


def test_unknown_ids_are_still_404(sims, tmp_path: Path) -> None:
    sim = sims(state_dir=tmp_path / "state")
    unknown = str(uuid.uuid4())
    with _client(sim) as client:
        for answer in (client.get(f"/api/v1/task/{unknown}"), client.delete(f"/api/v1/task/{unknown}")):
            assert answer.status_code == 404 and answer.json() == {"code": 404, "message": "Record Not Found"}
        assert client.get("/api/v1/task/'; DROP TABLE tasks; --").status_code == 404
    assert httpx.get(f"{sim.base_url}/files/{unknown}.mp4").status_code == 404
    assert sim.tasks == {}


def test_uploads_live_in_the_state_folder(sims, tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim = sims(state_dir=state)
    assert sim.workdir == state and sim.state_dir == state
    with _client(sim) as client:
        answer = client.post("/api/ephemeral_resource",
                             json={"file_name": "start.png", "file_data": base64.b64encode(START).decode()})
        assert answer.status_code == 200
        url = answer.json()["data"]["url"]
    assert httpx.get(url).content == START
    assert [p.read_bytes() for p in (state / "uploads").iterdir()] == [START]
    sim.stop()
    assert (state / "uploads").is_dir()  # kept: it is not a temporary folder


# ----------------------------------------------------------------------------- without state_dir


def test_without_state_dir_nothing_is_kept(sims) -> None:
    a = sims(pending_seconds=1000)
    assert a.state_dir is None
    folder = a.workdir
    task_id = _create(a)["task_id"]
    a.stop()
    assert folder is not None and not folder.exists()
    b = sims()
    assert _get(b, task_id).status_code == 404
    with pytest.raises(RuntimeError, match="no state_dir"):
        b.prune_state(older_than=0)
    assert b.state_size_bytes() == 0


def test_state_dir_and_a_different_workdir_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="state_dir or workdir"):
        Simulator(state_dir=tmp_path / "a", workdir=tmp_path / "b")
    Simulator(state_dir=tmp_path / "a", workdir=tmp_path / "a")  # the same folder is fine
    assert simulator_main(["--state-dir", str(tmp_path / "a"), "--workdir", str(tmp_path / "b")]) == 2


# ----------------------------------------------------------------------------- pruning


def test_prune_state_removes_old_finished_tasks_and_their_files(sims, tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim = sims(state_dir=state, pending_seconds=0, processing_seconds=0, long_side=160)
    finished = _create(sim, end=None)["task_id"]
    _wait(sim, finished, lambda d: d["status"] == "completed")
    waiting = sims(state_dir=state, pending_seconds=1000)
    other = _png((10, 200, 10))
    pending = _create(waiting, start=other, end=None)["task_id"]
    finished_key = sim.tasks[finished].render_key
    assert (state / "files" / f"{finished_key}.mp4").is_file()
    before = sim.state_size_bytes()

    assert sim.prune_state(older_than=timedelta(days=1)).tasks == 0  # nothing that old
    result = sim.prune_state(older_than=0)
    assert result.tasks == 1 and result.files == 2 and result.bytes > 0  # its video and its image
    assert sim.state_size_bytes() < before
    assert _get(sim, finished).status_code == 404  # gone, like an expired task
    assert _get(sim, pending).json()["data"]["status"] == "pending"  # not finished: kept
    assert [p.name for p in (state / "images").iterdir()] == [_sha(other)]
    assert not (state / "files" / f"{finished_key}.mp4").exists()

    sim.stop()
    waiting.stop()
    # A stopped (or never started) simulator prunes too; a pending task is never pruned.
    assert Simulator(state_dir=state).prune_state(older_than=0).tasks == 0
    with pytest.raises(ValueError):
        Simulator(state_dir=state).prune_state(older_than=-1)
    assert not any(name.endswith((".part", ".part.mp4")) for name in os.listdir(state / "files"))


# ----------------------------------------------------------------------------- issue 4, end to end

KERNEL = """
import asyncio, sys
from pathlib import Path
from PIL import Image
from framepack_widgets.client import AsyncClient
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Runner, RunStage
from framepack_widgets.simulator import Simulator
from framepack_widgets.runs import RunStore

async def main(folder):
    store = RunStore(folder)
    # The embedded simulator, as shared_simulator() should start it: state in the store's folder.
    sim = Simulator(state_dir=Path(folder) / "simulator", pending_seconds=0.5, processing_seconds=3,
                    long_side=160).start()
    async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        runner = Runner(client, store)
        run = runner.start(FramepackInput("camera zooms in", Image.new("RGB", (96, 64), (9, 99, 199))))
        def report(r):
            if r.stage is RunStage.PROCESSING:
                print("PROCESSING", r.run_id, flush=True)
        run.observe(report)
        await run  # the kernel is killed before this returns

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_a_kernel_with_its_embedded_simulator_then_resume(tmp_path: Path) -> None:
    """Issue 4: the kernel (and the simulator inside it) dies while a run is processing; the
    next kernel's simulator over the same state folder serves the task, the run completes,
    its video plays, and nothing is created (paid) twice."""
    import asyncio

    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import Runner, RunStage
    from framepack_widgets.runs import RunStore

    folder = tmp_path / "store"
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(kernel.stdout.readline), 60)
        assert line.startswith("PROCESSING"), line
        run_id = line.split()[1]
        kernel.kill()  # no atexit, no stop(): the simulator dies mid-task
        kernel.wait()
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        if kernel.stdout is not None:
            kernel.stdout.close()

    with Simulator(state_dir=folder / "simulator") as sim, RunStore(folder) as store:
        assert store.get(run_id).stage is RunStage.PROCESSING
        async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url) as client:
            resumed = Runner(client, store).resume()
            assert [r.run_id for r in resumed] == [run_id]
            run = await asyncio.wait_for(resumed[0].wait(), 120)
            info = await client.account_info()
        assert run.stage is RunStage.COMPLETED, (run.error, run.hint)
        assert run.video_path is not None
        info_video = _video_info(run.video_path.read_bytes())
        assert info_video["codec"] == "h264" and info_video["frames"] == 300
        assert sim.count("create") == 0  # nothing sent twice
        info = info.get("data", info)
        assert info["spent_in_usd"] == pytest.approx(0.30) and info["frozen_credits"] == 0, info


def test_profile_and_task_faults_are_kept_with_the_task(sims, tmp_path: Path) -> None:
    state = tmp_path / "state"
    a = sims(state_dir=state, pending_seconds=0, processing_seconds=0, long_side=160, profile="rich",
             faults=[Fault.output_shape("works_video"), Fault.capitalised_statuses(), Fault.url_lag(1)])
    task_id = _create(a, end=None)["task_id"]
    a.stop()
    b = sims(state_dir=state, profile="realistic")  # another simulator, another default: the task keeps its own
    done = _wait(b, task_id, lambda d: d["status"] == "Completed")
    assert done["output"] == {"video_url": ""}  # the lagging URL, once
    again = _get(b, task_id).json()["data"]
    assert again["output"]["works"][0]["video"]["resource_without_watermark"] == f"{b.base_url}/files/{task_id}.mp4"
