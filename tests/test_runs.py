"""Runs and the Runner against a fake AsyncClient: the order of store writes and requests,
every error path, cancel, resume after a crash, and the concurrency limit.

The integration tests at the end drive the real AsyncClient against the real simulator.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from framepack_widgets.runs import ownership
from framepack_widgets.runs import runner as runner_mod
from framepack_widgets.errors import (
    APIConnectionError,
    AuthenticationError,
    DownloadError,
    NotFoundError,
    SubmissionUnknownError,
    TaskFailedError,
    TaskTimeoutError,
)
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, RunNotAttachedError, Runner, RunStage
from framepack_widgets.runs import RunStore
from framepack_widgets.task import Task, TaskStatus
from framepack_widgets.video import read_settings

KEY = "sk-test-NEVER-STORED-0123456789"


# --------------------------------------------------------------------------- helpers
def make_mp4(path: Path, *, frames: int = 12, color: tuple[int, int, int] = (10, 200, 30)) -> Path:
    """A real, tiny H.264 MP4 whose last frame is `color` (the first frames are black)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            array = np.zeros((48, 64, 3), np.uint8)
            if i >= frames // 2:
                array[:] = color
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("video") / "clip.mp4").read_bytes()


def make_input(prompt: str = "a cat turns its head", *, duration: int = 10, color=(200, 40, 40), **kw: Any):
    from PIL import Image

    return FramepackInput(prompt, Image.new("RGB", (96, 64), color), duration=duration, **kw)


class FakeClient:
    """Just enough of AsyncClient: records calls; behaviour is set per test."""

    def __init__(self, video: bytes, *, is_simulator: bool = False) -> None:
        self.api_key = KEY  # never to be stored
        self.video = video
        self.is_simulator = is_simulator
        self.creates: list[Any] = []
        self.waits: list[str] = []
        self.hints: list[dict[str, Any]] = []  # extra keyword arguments of each wait() (the ETA hint)
        self.cancels: list[str] = []
        self.downloads: list[str] = []
        self.on_create: Any = None  # callable(input) run inside create_task, before answering
        self.create_error: BaseException | None = None
        self.create_gate: asyncio.Event | None = None
        self.wait_gate: asyncio.Event | None = None
        self.wait_error: BaseException | None = None
        self.download_error: BaseException | None = None
        self.cancel_result: Any = "cancelled"  # "cancelled" | None | an exception
        self.in_flight = 0
        self.max_in_flight = 0
        self.steps = [(TaskStatus.PROCESSING, 30.0), (TaskStatus.PROCESSING, 70.0)]

    async def create_task(self, input: Any) -> Task:
        self.creates.append(input)
        if self.on_create is not None:
            self.on_create(input)
        if self.create_gate is not None:
            await self.create_gate.wait()
        if self.create_error is not None:
            raise self.create_error
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return Task(task_id=f"task-{len(self.creates)}", status=TaskStatus.PENDING)

    async def wait(
        self, task_or_id: Any, *, timeout: float | None = None, on_update: Any = None, **hint: Any
    ) -> Task:
        task_id = task_or_id.task_id if isinstance(task_or_id, Task) else str(task_or_id)
        self.waits.append(task_id)
        self.hints.append(hint)
        try:
            for status, percent in self.steps:
                await asyncio.sleep(0)
                if on_update is not None:
                    on_update(Task(task_id=task_id, status=status, percent=percent, logs=(f"{percent:.0f}%",)))
            if self.wait_gate is not None:
                await self.wait_gate.wait()
            if self.wait_error is not None:
                raise self.wait_error
            done = Task(task_id=task_id, status=TaskStatus.COMPLETED, percent=100.0,
                        video_url=f"https://img.example/{task_id}.mp4")
            if on_update is not None:
                on_update(done)
            return done
        finally:
            self.in_flight = max(0, self.in_flight - 1)

    async def download(self, task: Task, path: Any) -> Path:
        self.downloads.append(task.task_id)
        if self.download_error is not None:
            raise self.download_error
        Path(path).write_bytes(self.video)
        return Path(path)

    async def cancel(self, task_id: str) -> Task | None:
        self.cancels.append(task_id)
        if isinstance(self.cancel_result, BaseException):
            raise self.cancel_result
        if self.cancel_result == "cancelled":
            return Task(task_id=task_id, status=TaskStatus.CANCELLED)
        return None


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "store") as s:
        yield s


@pytest.fixture
def client(mp4_bytes: bytes) -> FakeClient:
    return FakeClient(mp4_bytes)


def stages(run: Run) -> list[str]:
    return [e.stage.value for e in run.history]


# --------------------------------------------------------------------------- the happy path
def _packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def _packets_of_bytes(data: bytes, path: Path) -> list[bytes]:
    path.write_bytes(data)
    try:
        return _packets(path)
    finally:
        path.unlink()


async def test_run_is_stored_before_create_and_completes(store: RunStore, client: FakeClient) -> None:
    seen_in_store: list[str] = []

    def check_store(input: Any) -> None:
        # Another connection (as another process would) already sees the run, submitting.
        with RunStore(store.folder) as other:
            [stored] = other.list()
            assert stored.prompt == input.prompt
            seen_in_store.append(stored.stage.value)

    client.on_create = check_store
    changes: list[str] = []
    runner = Runner(client, store, on_change=lambda r: changes.append(r.stage.value))
    run = runner.start(make_input())
    assert run.stage is RunStage.QUEUED and store.get(run.run_id).stage is RunStage.QUEUED
    observed: list[tuple[str, float | None]] = []
    run.observe(lambda r: observed.append((r.stage.value, r.percent)))

    assert (await run) is run
    assert seen_in_store == ["submitting"]
    assert run.stage is RunStage.COMPLETED and run.done()
    assert run.task_id == "task-1" and run.status is TaskStatus.COMPLETED
    assert stages(run) == ["queued", "submitting", "pending", "processing", "processing", "processing",
                           "downloading", "completed"]
    assert run.video_path is not None and run.video_path.parent == store.videos_dir
    # The store's copy is the downloaded video with the run's settings in its comment tag.
    assert _packets(run.video_path) == _packets_of_bytes(client.video, store.tmp_dir.parent / "sent.mp4")
    settings = read_settings(run.video_path)
    assert settings is not None and settings["run_id"] == run.run_id and settings["prompt"] == run.prompt
    assert run.video_path.name == f"{run.video_sha}.mp4"
    assert run.wall_time is not None and run.wall_time >= 0
    assert run.created_at.tzinfo is not None and run.finished_at is not None
    assert run.cost_usd == pytest.approx(0.30) and not run.simulated and run.backend == "piapi"
    assert run.logs == ("70%",)
    assert changes[-1] == "completed" and observed[-1] == ("completed", 100.0)
    assert list(store.tmp_dir.iterdir()) == []

    stored = store.get(run.run_id)  # what a new kernel would see
    assert stored.stage is RunStage.COMPLETED and stored.video_path == run.video_path
    assert [e.stage for e in stored.history] == [e.stage for e in run.history]
    assert stored.input == run.input
    record = json.loads(json.dumps(run.to_dict()))
    assert record["video_path"] == str(run.video_path) and record["stage"] == "completed"
    assert record["cost_usd"] == 0.3 and record["prompt"] == run.prompt
    again = Run.from_dict(record)
    assert again.to_dict() == {**record, "wall_time": again.wall_time}


async def test_simulator_backend_is_flagged(store: RunStore, mp4_bytes: bytes) -> None:
    runner = Runner(FakeClient(mp4_bytes, is_simulator=True), store)
    run = await runner.start(make_input(duration=20))
    assert run.backend == "simulator" and run.simulated and run.cost_usd == pytest.approx(0.6)
    assert run.to_dict()["simulated"] is True
    assert "Simulator()" in run.code()


def test_start_without_a_running_loop_is_refused_and_stores_nothing(store: RunStore, client: FakeClient) -> None:
    runner = Runner(client, store)
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        runner.start(make_input())
    assert store.count() == 0 and client.creates == []


async def test_start_is_cheap_and_reentrant(store: RunStore, client: FakeClient) -> None:
    runner = Runner(client, store)
    inp = make_input()
    a, b = runner.start(inp), runner.start(inp)  # a double click: the widget dedupes, the runner stays sane
    assert a.run_id != b.run_id and store.count() == 2
    await asyncio.gather(a.wait(), b.wait())
    assert {a.stage, b.stage} == {RunStage.COMPLETED} and len(client.creates) == 2
    # Each copy carries its own run's settings (run id), so the same video is two files.
    assert a.video_path != b.video_path and len(list(store.videos_dir.iterdir())) == 2
    assert [read_settings(r.video_path)["run_id"] for r in (a, b)] == [a.run_id, b.run_id]


# --------------------------------------------------------------------------- error paths
async def test_submission_unknown_is_kept_and_never_resent(store: RunStore, client: FakeClient) -> None:
    client.create_error = SubmissionUnknownError("the connection dropped after the request was sent")
    run = await Runner(client, store).start(make_input())
    assert run.stage is RunStage.SUBMISSION_UNKNOWN and run.task_id is None
    assert "task list" in run.hint and "Nothing was resent" in run.hint
    assert "connection dropped" in run.error
    assert len(client.creates) == 1

    # A new kernel: resume shows it, sends nothing.
    client.create_error = None
    runner = Runner(client, store)
    resumed = runner.resume()
    assert [r.run_id for r in resumed] == [run.run_id]
    assert resumed[0].stage is RunStage.SUBMISSION_UNKNOWN
    await asyncio.sleep(0.01)
    assert len(client.creates) == 1
    assert store.get(run.run_id).stage is RunStage.SUBMISSION_UNKNOWN
    # The person found the task in their dashboard: follow it, nothing sent.
    attached = runner.attach(resumed[0], "task-found")
    await attached
    assert attached.stage is RunStage.COMPLETED and client.waits[-1] == "task-found"
    assert len(client.creates) == 1


async def test_dismiss_takes_a_run_out_of_unfinished(store: RunStore, client: FakeClient) -> None:
    client.create_error = SubmissionUnknownError("dropped")
    runner = Runner(client, store)
    run = await runner.start(make_input())
    assert [r.run_id for r in store.unfinished()] == [run.run_id]
    runner.dismiss(run)
    assert store.unfinished() == [] and store.get(run.run_id).stage is RunStage.ERROR
    assert "billed" in store.get(run.run_id).hint


async def test_task_failed(store: RunStore, client: FakeClient) -> None:
    failed = Task(task_id="task-1", status=TaskStatus.FAILED, error="NSFW content detected")
    client.wait_error = TaskFailedError("task task-1 failed: NSFW content detected", task=failed)
    run = await Runner(client, store).start(make_input())
    assert run.stage is RunStage.FAILED and run.status is TaskStatus.FAILED
    assert run.error == "NSFW content detected" and run.hint
    assert run.video_path is None and store.get(run.run_id).stage is RunStage.FAILED


async def test_task_cancelled_at_piapi_is_cancelled(store: RunStore, client: FakeClient) -> None:
    cancelled = Task(task_id="task-1", status=TaskStatus.CANCELLED)
    client.wait_error = TaskFailedError("task task-1 was cancelled", task=cancelled)
    run = await Runner(client, store).start(make_input())
    assert run.stage is RunStage.CANCELLED


async def test_timeout_then_resume_reattaches_without_resending(store: RunStore, client: FakeClient) -> None:
    last = Task(task_id="task-1", status=TaskStatus.PROCESSING, percent=40.0)
    client.wait_error = TaskTimeoutError("gave up waiting for task-1 after 600 s", task_id="task-1", last_task=last)
    run = await Runner(client, store, timeout=600).start(make_input())
    assert run.stage is RunStage.TIMED_OUT and run.task_id == "task-1" and run.percent == 40.0
    assert "may still finish" in run.hint
    assert [r.run_id for r in store.unfinished()] == [run.run_id]

    client.wait_error = None
    [again] = Runner(client, store).resume()
    await again
    assert again.stage is RunStage.COMPLETED and again.error is None and again.hint is None
    assert len(client.creates) == 1 and client.waits == ["task-1", "task-1"]
    assert store.unfinished() == []


# --------------------------------------------------------------------------- link point and change channel
async def test_a_runner_hears_a_run_it_handed_out_whichever_runner_drives_it(store: RunStore, client: FakeClient) -> None:
    """One channel: a run listed by runner B and later re-attached by runner A still reaches
    B's observers (B's widget shows its card), with no bridge between the two runners."""
    last = Task(task_id="task-1", status=TaskStatus.PROCESSING, percent=40.0)
    client.wait_error = TaskTimeoutError("gave up waiting for task-1", task_id="task-1", last_task=last)
    first = Runner(client, store, timeout=600)
    run = await first.start(make_input())
    assert run.stage is RunStage.TIMED_OUT
    client.wait_error = None

    heard_by_b: list[str] = []
    b = Runner(client, store)
    stop = b.observe(lambda r: heard_by_b.append(r.stage.value))
    [listed] = b.list()
    assert listed is run and run.store is store and run.runner is b
    a = Runner(client, store)
    await a.reattach(run)
    assert run.stage is RunStage.COMPLETED and run.runner is a
    assert heard_by_b[-1] == "completed" and "downloading" in heard_by_b
    stop()
    heard = len(heard_by_b)
    run.notify()
    assert len(heard_by_b) == heard, "observe() returns a function that stops it"


async def test_every_run_a_runner_hands_out_is_linked_to_it_and_its_store(store: RunStore, client: FakeClient) -> None:
    runner = Runner(client, store)
    run = runner.start(make_input())
    assert run.store is store and run.runner is runner
    await run
    read = store.get(run.run_id)  # a record read straight from the store knows its store, no runner
    assert read.store is store and read.runner is None
    other = Runner(client, store)
    assert other.get(run.run_id).runner is other


def test_runs_are_linked_only_through_run_link() -> None:
    """`Run.link` is the one place a run's store and runner are set: no module assigns
    `x.store` or `x.runner` on anything but `self`."""
    import ast

    root = Path(__file__).resolve().parent.parent / "framepack_widgets"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for item in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if (isinstance(item, ast.Attribute) and item.attr in ("store", "runner")
                            and not (isinstance(item.value, ast.Name) and item.value.id == "self")):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


@pytest.mark.parametrize(
    ("phase", "error", "hint_part"),
    [
        ("create", AuthenticationError("401: invalid API key", status_code=401), "Nothing was charged"),
        ("create", APIConnectionError("could not connect to api.piapi.ai"), "Nothing was charged"),
        ("wait", APIConnectionError("the network went away"), "runner.reattach(run)"),
        ("wait", NotFoundError("404 task not found", status_code=404), "no longer knows"),
        ("download", DownloadError("403 from the video host"), "billed"),
        ("wait", RuntimeError("a bug"), "See the error message"),
    ],
)
async def test_other_errors_become_error_with_a_hint(
    store: RunStore, client: FakeClient, phase: str, error: BaseException, hint_part: str
) -> None:
    setattr(client, f"{phase}_error", error)
    run = await Runner(client, store).start(make_input())
    assert run.stage is RunStage.ERROR
    assert str(error) in run.error and hint_part in run.hint
    stored = store.get(run.run_id)
    assert stored.stage is RunStage.ERROR and stored.hint == run.hint
    if phase == "create":
        assert run.task_id is None
    else:
        assert run.task_id == "task-1"
    assert list(store.tmp_dir.iterdir()) == []


async def test_reattach_after_a_failed_download(store: RunStore, client: FakeClient) -> None:
    client.download_error = DownloadError("connection reset")
    runner = Runner(client, store)
    run = await runner.start(make_input())
    assert run.stage is RunStage.ERROR
    client.download_error = None
    await runner.reattach(run)
    assert run.stage is RunStage.COMPLETED and len(client.creates) == 1


async def test_an_observer_that_raises_does_not_stop_the_run(store: RunStore, client: FakeClient) -> None:
    run = Runner(client, store, on_change=lambda r: 1 / 0).start(make_input())
    stop = run.observe(lambda r: [][1])
    await run
    stop()
    assert run.stage is RunStage.COMPLETED


# --------------------------------------------------------------------------- cancel
async def test_cancel_while_queued_sends_nothing(store: RunStore, client: FakeClient) -> None:
    client.wait_gate = asyncio.Event()
    runner = Runner(client, store, max_concurrent=1)
    first = runner.start(make_input("first"))
    second = runner.start(make_input("second"))
    await asyncio.sleep(0.05)
    assert second.stage is RunStage.QUEUED and len(client.creates) == 1
    runner.cancel(second)
    await second
    assert second.stage is RunStage.CANCELLED and "Nothing was charged" in second.hint
    client.wait_gate.set()
    await first
    assert first.stage is RunStage.COMPLETED and len(client.creates) == 1


async def test_cancel_while_pending_cancels_at_piapi(store: RunStore, client: FakeClient) -> None:
    client.steps = []
    client.wait_gate = asyncio.Event()
    runner = Runner(client, store)
    run = runner.start(make_input())
    while run.task_id is None:
        await asyncio.sleep(0.01)
    run.cancel()
    runner.cancel(run)  # a double click changes nothing
    await run
    assert run.stage is RunStage.CANCELLED and client.cancels == ["task-1"]
    assert run.status is TaskStatus.CANCELLED and "Cancelled at PiAPI" in run.hint
    assert store.get(run.run_id).stage is RunStage.CANCELLED


@pytest.mark.parametrize("answer", [None, NotFoundError("cancel is not supported", status_code=404)])
async def test_cancel_not_confirmed_says_it_may_be_billed(store: RunStore, client: FakeClient, answer: Any) -> None:
    client.cancel_result = answer
    client.wait_gate = asyncio.Event()
    runner = Runner(client, store)
    run = runner.start(make_input())
    while run.stage is not RunStage.PROCESSING:
        await asyncio.sleep(0.01)
    runner.cancel(run)
    await run
    assert run.stage is RunStage.CANCELLED and "may still run and be billed" in run.hint


async def test_cancel_during_create_waits_for_the_answer_then_cancels(store: RunStore, client: FakeClient) -> None:
    client.create_gate = asyncio.Event()
    runner = Runner(client, store)
    run = runner.start(make_input())
    while run.stage is not RunStage.SUBMITTING:
        await asyncio.sleep(0.01)
    runner.cancel(run)  # the create request is in flight: it must not be cut off (outcome unknown)
    await asyncio.sleep(0.02)
    assert not run.done()
    client.create_gate.set()
    await run
    assert run.stage is RunStage.CANCELLED and run.task_id == "task-1"
    assert client.cancels == ["task-1"] and len(client.creates) == 1


async def test_cancel_a_finished_run_does_nothing(store: RunStore, client: FakeClient) -> None:
    runner = Runner(client, store)
    run = await runner.start(make_input())
    runner.cancel(run)
    assert run.stage is RunStage.COMPLETED and client.cancels == []


# --------------------------------------------------------------------------- resume after a crash
def _stored_run(store: RunStore, stage: RunStage, *, task_id: str | None, owner: str | None, age: float = 0.0) -> Run:
    """Write a run as a kernel would have left it when it died."""
    inp = make_input(f"left {stage.value}")
    run = Run.from_input(inp)
    run.created_at = run.created_at - timedelta(seconds=age)
    store.put_image(inp.start_image)
    run.update(stage=stage, task_id=task_id, status=TaskStatus.PROCESSING if task_id else None)
    store.save(run, owner=owner)
    return run


def _driver(run: Run) -> asyncio.Task:
    """The asyncio task driving `run` (what asyncio cancels when the kernel's loop stops)."""
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == f"framepack-run-{run.run_id[:8]}"]
    return task


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{ownership.HOST}:{proc.pid}:deadbeef"


async def test_resume_after_a_crash(store: RunStore, client: FakeClient) -> None:
    dead = _dead_owner()
    processing = _stored_run(store, RunStage.PROCESSING, task_id="task-77", owner=dead)
    downloading = _stored_run(store, RunStage.DOWNLOADING, task_id="task-78", owner=dead)
    queued = _stored_run(store, RunStage.QUEUED, task_id=None, owner=dead)
    submitting = _stored_run(store, RunStage.SUBMITTING, task_id=None, owner=dead)
    old_queued = _stored_run(store, RunStage.QUEUED, task_id=None, owner=None, age=3 * 86400)
    done = _stored_run(store, RunStage.COMPLETED, task_id="task-1", owner=None)

    runner = Runner(client, store)  # the new kernel
    resumed = runner.resume()
    by_id = {r.run_id: r for r in resumed}
    assert set(by_id) == {processing.run_id, downloading.run_id, queued.run_id, submitting.run_id, old_queued.run_id}
    assert done.run_id not in by_id
    assert [r.run_id for r in runner.awaiting_consent] == [queued.run_id]  # never sent: not sent unasked
    with pytest.raises(RunNotAttachedError, match="waits for your word"):
        await by_id[queued.run_id]
    await asyncio.sleep(0.05)
    assert client.creates == []
    assert runner.send() == [by_id[queued.run_id]]  # the person says "Send"
    await asyncio.gather(*(r.wait() for r in resumed))

    assert by_id[processing.run_id].stage is RunStage.COMPLETED
    assert by_id[downloading.run_id].stage is RunStage.COMPLETED
    assert by_id[queued.run_id].stage is RunStage.COMPLETED  # certainly never sent: sent once now
    assert by_id[submitting.run_id].stage is RunStage.SUBMISSION_UNKNOWN  # maybe sent: never resent
    assert "Nothing was resent" in by_id[submitting.run_id].hint
    assert by_id[old_queued.run_id].stage is RunStage.CANCELLED  # too old to send unasked
    assert "Nothing was charged" in by_id[old_queued.run_id].hint
    assert [i.prompt for i in client.creates] == ["left queued"]
    assert sorted(client.waits) == ["task-1", "task-77", "task-78"]  # task-1: the queued run, sent now

    # Resuming again finds only what needs the person.
    again = Runner(client, store).resume()
    assert [r.stage for r in again] == [RunStage.SUBMISSION_UNKNOWN]
    assert len(client.creates) == 1


async def test_resume_never_sends_a_run_across_backends(store: RunStore, mp4_bytes: bytes) -> None:
    """A simulator run left queued must not be sent (and billed) by a kernel that has a real key."""
    dead = _dead_owner()
    sim_queued = _stored_run(store, RunStage.QUEUED, task_id=None, owner=dead)
    sim_queued.update(backend="simulator")
    store.save(sim_queued, owner=dead)
    sim_processing = _stored_run(store, RunStage.PROCESSING, task_id="sim-task", owner=dead)
    sim_processing.update(backend="simulator")
    store.save(sim_processing, owner=dead)

    piapi = FakeClient(mp4_bytes, is_simulator=False)
    assert Runner(piapi, store).resume() == []
    assert piapi.creates == [] and piapi.waits == []
    assert store.get(sim_queued.run_id).stage is RunStage.QUEUED  # left for a simulator runner

    simulator = FakeClient(mp4_bytes, is_simulator=True)
    runner = Runner(simulator, store)
    resumed = runner.resume()
    runner.send()  # the queued one, once the person says so
    await asyncio.gather(*(r.wait() for r in resumed))
    assert {r.run_id for r in resumed} == {sim_queued.run_id, sim_processing.run_id}
    assert len(simulator.creates) == 1 and simulator.waits.count("sim-task") == 1


async def test_loop_shutdown_mid_run_leaves_it_resumable(store: RunStore, client: FakeClient) -> None:
    client.wait_gate = asyncio.Event()
    runner = Runner(client, store)
    run = runner.start(make_input())
    while run.stage is not RunStage.PROCESSING:
        await asyncio.sleep(0.01)
    _driver(run).cancel()  # what asyncio does to pending tasks when the kernel's loop stops
    await asyncio.sleep(0.01)
    assert store.get(run.run_id).stage is RunStage.PROCESSING  # not marked cancelled
    with pytest.raises(RunNotAttachedError, match="resume"):
        await store.get(run.run_id)

    client.wait_gate.set()
    [resumed] = Runner(client, store).resume()
    await resumed
    assert resumed.stage is RunStage.COMPLETED and len(client.creates) == 1


async def test_loop_shutdown_during_create_is_submission_unknown(store: RunStore, client: FakeClient) -> None:
    client.create_gate = asyncio.Event()
    run = Runner(client, store).start(make_input())
    while run.stage is not RunStage.SUBMITTING:
        await asyncio.sleep(0.01)
    _driver(run).cancel()
    await asyncio.sleep(0.01)
    assert store.get(run.run_id).stage is RunStage.SUBMISSION_UNKNOWN
    client.create_gate.set()
    Runner(client, store).resume()
    await asyncio.sleep(0.01)
    assert len(client.creates) == 1


async def test_two_runners_resuming_at_once_send_a_queued_run_once(store: RunStore, client: FakeClient) -> None:
    queued = _stored_run(store, RunStage.QUEUED, task_id=None, owner=_dead_owner())
    first, second = Runner(client, store), Runner(client, store)  # two widgets in one kernel
    a, b = first.resume(), second.resume()
    assert a[0] is b[0]
    with RunStore(store.folder) as other_connection:
        third = Runner(client, other_connection)  # another kernel
        c = third.resume()
        # The person presses "Send" in all three at once: one create.
        sent = first.send() + second.send() + third.send()
        assert len(sent) == 1
        await asyncio.gather(*(r.wait() for r in sent))
    assert store.get(queued.run_id).stage is RunStage.COMPLETED
    assert len(client.creates) == 1


async def test_a_run_driven_by_a_live_process_is_not_taken_over(store: RunStore, client: FakeClient) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = f"{ownership.HOST}:{proc.pid}:cafe"
        queued = _stored_run(store, RunStage.QUEUED, task_id=None, owner=owner)
        [seen] = Runner(client, store).resume()
        assert seen.run_id == queued.run_id and seen.stage is RunStage.QUEUED
        await asyncio.sleep(0.02)
        assert client.creates == []
        with pytest.raises(RuntimeError, match="another kernel"):
            Runner(client, store).cancel(seen)
    finally:
        proc.kill()
        proc.wait()


async def test_runs_of_another_kernel_are_watched_and_taken_over_when_it_dies(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod, "WATCH_SECONDS", 0.01)
    other_kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{ownership.HOST}:{other_kernel.pid}:0ther"
        theirs = _stored_run(store, RunStage.PROCESSING, task_id="task-theirs", owner=owner)
        seen: list[tuple[str, float | None]] = []
        runner = Runner(client, store, on_change=lambda r: seen.append((r.stage.value, r.percent)))
        [watched] = runner.resume()
        assert watched.run_id == theirs.run_id
        waiter = asyncio.ensure_future(watched.wait())

        with RunStore(store.folder) as their_store:  # the other kernel makes progress
            progress = their_store.get(theirs.run_id)
            progress.update(percent=60.0)
            their_store.save(progress, owner=owner)
        for _ in range(200):
            if ("processing", 60.0) in seen:
                break
            await asyncio.sleep(0.01)
        assert ("processing", 60.0) in seen and client.waits == []
        with pytest.raises(RuntimeError, match="another kernel"):
            runner.cancel(watched)
    finally:
        other_kernel.kill()  # ... and then it dies
        other_kernel.wait()
    run = await asyncio.wait_for(waiter, 10)
    assert run is watched and run.stage is RunStage.COMPLETED
    assert client.waits == ["task-theirs"] and client.creates == []
    assert seen[-1] == ("completed", 100.0)


async def test_await_a_run_driven_by_another_kernel_follows_the_store(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod, "POLL_STORE_SECONDS", 0.01)
    other_kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = f"{ownership.HOST}:{other_kernel.pid}:0ther"
        theirs = _stored_run(store, RunStage.PROCESSING, task_id="task-theirs", owner=owner)
        runner = Runner(client, store)
        waiter = asyncio.ensure_future(runner.wait(store.get(theirs.run_id)))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        with RunStore(store.folder) as their_store:  # the other kernel finishes it
            done = their_store.get(theirs.run_id)
            done.update(stage=RunStage.COMPLETED, status=TaskStatus.COMPLETED, percent=100.0)
            their_store.save(done)
        assert (await asyncio.wait_for(waiter, 5)).stage is RunStage.COMPLETED
        assert client.waits == [] and client.creates == []  # followed, never driven here
    finally:
        other_kernel.kill()
        other_kernel.wait()


# --------------------------------------------------------------------------- concurrency
async def test_concurrency_limit(store: RunStore, client: FakeClient) -> None:
    client.steps = [(TaskStatus.PROCESSING, 50.0)]
    runner = Runner(client, store, max_concurrent=2)
    runs = [runner.start(make_input(f"prompt {i}")) for i in range(7)]
    assert store.count() == 7  # all stored at once, QUEUED
    await asyncio.sleep(0)
    assert len(runner.active) == 7
    await runner.wait_all()
    assert all(r.stage is RunStage.COMPLETED for r in runs)
    assert client.max_in_flight == 2 and len(client.creates) == 7
    assert runner.active == []


# --------------------------------------------------------------------------- Run in Python
async def test_last_frame_show_code_and_rerun(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(client, store)
    run = await runner.start(make_input("camera zooms in", duration=12))

    frame = run.last_frame()
    assert frame.size == (64, 48)
    r, g, b = frame.convert("RGB").getpixel((32, 24))
    assert g > 150 and r < 60 and b < 80

    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    run.show()
    assert shown and "video/mp4;base64" in shown[0]._repr_html_()

    code = run.code()
    compile(code, "<run.code()>", "exec")
    image_file = store.image_path(run.input.start_image.sha256)
    assert str(image_file) in code and "duration=12" in code and "camera zooms in" in code
    assert KEY not in code and "api_key" not in code
    assert FramepackInput("camera zooms in", image_file, duration=12).start_image.sha256 == run.input.start_image.sha256

    again = run.rerun(prompt="camera zooms out", duration=15)
    await again
    assert again.run_id != run.run_id and again.prompt == "camera zooms out" and again.duration == 15
    assert again.input.start_image == run.input.start_image

    detached = store.get(run.run_id)
    with pytest.raises(RunNotAttachedError, match="runner.start"):
        detached.rerun()
    assert runner.get(run.run_id).rerun is not None
    assert [r.run_id for r in runner.list(limit=2)] == [again.run_id, run.run_id]
    assert runner.runs[0].run_id == again.run_id


async def test_show_and_last_frame_without_a_video(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_error = AuthenticationError("401", status_code=401)
    run = await Runner(client, store).start(make_input())
    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    run.show()
    assert "error" in shown[0] and "API key" in shown[0]
    with pytest.raises(FileNotFoundError, match="no local video"):
        run.last_frame()


async def test_stored_runs_load_images_only_when_needed(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(client, store)
    run = await runner.start(make_input(end_image=make_input(color=(0, 0, 255)).start_image))
    loads: list[str] = []
    original = RunStore.image_bytes
    monkeypatch.setattr(RunStore, "image_bytes", lambda self, sha: loads.append(sha) or original(self, sha))
    [stored] = store.list()
    record = stored.to_dict()
    assert record["prompt"] == run.prompt and loads == []
    assert stored.input == run.input and len(loads) == 2


async def test_runner_validates_its_arguments(store: RunStore, client: FakeClient) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        Runner(client, store, max_concurrent=0)
    with pytest.raises(TypeError, match="FramepackInput"):
        Runner(client, store).start({"prompt": "x"})  # type: ignore[arg-type]
    assert store.count() == 0


# --------------------------------------------------------------------------- integration: the real simulator
async def test_two_runs_end_to_end_on_the_simulator(store: RunStore) -> None:
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.simulator import Simulator

    with Simulator(time_scale=20.0) as sim:
        async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url) as client:
            runner = Runner(client, store, max_concurrent=2)
            a = runner.start(make_input("camera zooms in slowly"))
            b = runner.start(make_input("camera pans left", color=(20, 20, 220)))
            await asyncio.wait_for(asyncio.gather(a.wait(), b.wait()), 120)
        assert sim.count("create") == 2
    for run in (a, b):
        assert run.stage is RunStage.COMPLETED, (run.error, run.hint)
        assert run.backend == "simulator" and run.video_path is not None and run.video_path.exists()
        assert run.last_frame().size[0] > 0
        assert RunStage.PROCESSING in [e.stage for e in run.history]
    assert a.video_path != b.video_path
    db = store.db_path.read_bytes() + Path(str(store.db_path) + "-wal").read_bytes()
    assert sim.api_key.encode() not in db


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from PIL import Image
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Runner, RunStage
    from framepack_widgets.runs import RunStore

    async def main(folder, base_url, key):
        store = RunStore(folder)
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            runner = Runner(client, store)
            run = runner.start(FramepackInput("camera zooms in", Image.new("RGB", (96, 64), (9, 99, 199))))
            def report(r):
                if r.stage is RunStage.PROCESSING:
                    print("PROCESSING", r.run_id, flush=True)
            run.observe(report)
            await run  # killed before this returns

    asyncio.run(main(*sys.argv[1:4]))
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_kill_the_kernel_while_processing_then_resume(tmp_path: Path) -> None:
    """A kernel starts a run and is killed while PiAPI (the simulator, in its own process) is
    processing it; a new kernel resumes: the video completes, with exactly one create request."""
    from framepack_widgets.client import AsyncClient

    folder, key, port = tmp_path / "store", "sim-key-for-kill-test", _free_port()
    sim_log = (tmp_path / "sim.log").open("w")
    sim = subprocess.Popen(
        [sys.executable, "-m", "framepack_widgets.simulator", "--port", str(port), "--time-scale", "10",
         "--api-key", key],
        stdout=sim_log, stderr=subprocess.STDOUT,
    )
    child = None
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in (tmp_path / "sim.log").read_text():
            assert time.monotonic() < deadline and sim.poll() is None, (tmp_path / "sim.log").read_text()
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port}"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder), base_url, key], stdout=subprocess.PIPE, text=True
        )
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        assert line.startswith("PROCESSING"), line
        run_id = line.split()[1]
        child.kill()  # the kernel dies mid-run
        child.wait()

        with RunStore(folder) as store:
            assert store.get(run_id).stage is RunStage.PROCESSING
            async with AsyncClient(api_key=key, base_url=base_url) as client:
                resumed = Runner(client, store).resume()
                assert [r.run_id for r in resumed] == [run_id]
                run = await asyncio.wait_for(resumed[0].wait(), 120)
            assert run.stage is RunStage.COMPLETED, (run.error, run.hint)
            assert run.video_path is not None and run.video_path.exists()
            assert run.last_frame().size[0] > 0
            assert store.get(run_id).stage is RunStage.COMPLETED
            # The simulator bills like PiAPI: one 10 s task spent, nothing else pending or spent.
            async with AsyncClient(api_key=key, base_url=base_url) as client:
                info = await client.account_info()
            info = info.get("data", info)
            assert info["spent_in_usd"] == pytest.approx(0.30) and info["frozen_credits"] == 0, info
    finally:
        for proc in (child, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        sim_log.close()


# --------------------------------------------------------------------------- the ETA hint for polling
async def test_runner_passes_an_eta_hint_only_once_history_exists(store: RunStore, client: FakeClient) -> None:
    runner = Runner(client, store)
    for _ in range(3):  # too few finished runs: the default is a guess, not passed on
        await runner.start(make_input())
    assert client.hints == [{}, {}, {}]
    estimate = store.estimate(10, backend="piapi")
    assert estimate.basis == "history"
    run = await runner.start(make_input())
    assert run.stage is RunStage.COMPLETED
    [hint] = client.hints[3:]
    assert set(hint) == {"expected_seconds"}
    assert 0.0 <= hint["expected_seconds"] <= estimate.seconds + 1e-9


async def test_runner_hint_is_measured_from_submission(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framepack_widgets.runs.eta import Estimate

    asked: list[tuple[Any, str]] = []

    def learned(duration: int, *, backend: str = "piapi", **kw: Any) -> Estimate:
        asked.append((duration, backend))
        return Estimate(120.0, "history", 5, backend)

    monkeypatch.setattr(store, "estimate", learned)
    run = await Runner(client, store).start(make_input(duration=20))
    assert run.stage is RunStage.COMPLETED and asked == [(20, "piapi")]
    [hint] = client.hints
    assert 110.0 < hint["expected_seconds"] <= 120.0


@pytest.mark.parametrize("problem", ["default", "raises", "nonsense"])
async def test_runner_without_a_learned_estimate_passes_no_hint(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    from framepack_widgets.runs.eta import Estimate

    def estimate(duration: int, *, backend: str = "piapi", **kw: Any) -> Any:
        if problem == "raises":
            raise RuntimeError("database is locked")
        if problem == "nonsense":
            return type("Broken", (), {"basis": "history", "seconds": None})()  # float(None) raises
        return Estimate(120.0, "default", 0, backend)

    monkeypatch.setattr(store, "estimate", estimate)
    run = await Runner(client, store).start(make_input())
    assert run.stage is RunStage.COMPLETED  # a store problem never breaks a run
    assert client.hints == [{}]


# --------------------------------------------------------------------------- a full disk
async def test_a_full_disk_after_the_create_keeps_the_task_id_and_saves_it_later(
    store: RunStore, client: FakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gc
    import sqlite3

    from framepack_widgets.runs import saving

    original = RunStore.save
    failures = {"left": 0}

    def flaky(self: RunStore, run: Run, **kwargs: Any) -> bool:
        if failures["left"] and kwargs.get("expect_stage") is None:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return original(self, run, **kwargs)

    monkeypatch.setattr(RunStore, "save", flaky)
    monkeypatch.setattr(saving, "FIRST_RETRY_SECONDS", 0.01)
    client.on_create = lambda _input: failures.update(left=3)  # the disk fills while the create is in flight
    client.wait_gate = asyncio.Event()
    run = Runner(client, store).start(make_input())
    for _ in range(500):
        if run.task_id is not None and run.hint:
            break
        await asyncio.sleep(0.005)
    assert run.task_id == "task-1" and "task-1" in run.hint and "disk is full" in run.hint
    assert store.get(run.run_id).task_id is None  # not on disk yet, but not lost
    for _ in range(500):
        if store.get(run.run_id).task_id == "task-1":
            break
        await asyncio.sleep(0.01)
    assert store.get(run.run_id).task_id == "task-1" and run.hint is None  # saved after all
    client.wait_gate.set()
    await asyncio.wait_for(run.wait(), 10)
    assert run.stage is RunStage.COMPLETED and len(client.creates) == 1
    assert store.get(run.run_id).stage is RunStage.COMPLETED
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_full_disk_before_the_create_sends_nothing(store: RunStore, client: FakeClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from framepack_widgets.runs.store import StoreError

    def full(self: RunStore, run: Run, **kwargs: Any) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "save", full)
    with pytest.raises(StoreError, match="disk is full.*nothing was sent"):
        Runner(client, store).start(make_input())
    assert client.creates == []
