"""Runs: one generation as the person sees it, and the `Runner` that drives runs to the end.

A `Run` is written to the `RunStore` before its create request is sent and saved again at
every change, so a kernel restart loses nothing: `Runner.resume()` re-attaches unfinished
runs by task id, and a create request whose outcome is unknown is kept as such and shown,
never sent again automatically (see DESIGN.md, "Money" and "Nothing lost").

Light to import: PIL, numpy, av and IPython load only inside the methods that need them.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import os
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TaskFailedError,
    TaskTimeoutError,
)
from .task import Task, TaskStatus

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .client import AsyncClient
    from .inputs import FramepackInput
    from .store import RunStore

__all__ = ["RunStage", "RunEvent", "Run", "Runner", "RunNotAttachedError", "COST_PER_SECOND"]

log = logging.getLogger(__name__)

COST_PER_SECOND = 0.03  # USD per second of video (PiAPI's Framepack price; same as inputs.COST_PER_SECOND)

#: A QUEUED run (never sent) older than this is not submitted by `resume()`: the person
#: pressed Generate long ago and may not want to pay for it now. It is marked CANCELLED.
QUEUED_MAX_AGE = timedelta(hours=12)
#: How often a Runner refreshes the store's "this run is being driven" mark.
HEARTBEAT_SECONDS = 30.0
#: A run driven from another machine counts as abandoned after this long without a heartbeat.
STALE_SECONDS = 300.0
#: How often `await run` re-reads the store for a run driven by another process.
POLL_STORE_SECONDS = 0.5
#: How often a Runner re-reads runs that another kernel drives (to show their progress,
#: and to take them over if that kernel stops).
WATCH_SECONDS = 2.0

HINT_SUBMISSION_UNKNOWN = (
    "The create request may have reached PiAPI and started a task, but no answer arrived. "
    "Nothing was resent. Check your PiAPI task list before trying again: if the task is "
    "there, runner.attach(run, task_id) follows it; if not, run.rerun() sends it again."
)
HINT_TIMED_OUT = (
    "Waiting gave up, but the task may still finish at PiAPI. runner.resume() (or "
    "runner.reattach(run)) follows it again by task id without paying twice."
)
HINT_INTERRUPTED_SUBMIT = (
    "The kernel stopped while the create request was in flight, so it may have started a "
    "task. Nothing was resent. " + HINT_SUBMISSION_UNKNOWN.split("Nothing was resent. ", 1)[1]
)


class RunStage(str, enum.Enum):
    """Where a run is in its life, as stored. The API's own status is kept apart (`Run.status`)."""

    QUEUED = "queued"  # stored, create request not sent (waiting for a slot)
    SUBMITTING = "submitting"  # create request being sent: outcome unknown until it answers
    PENDING = "pending"  # task created, waiting at PiAPI
    PROCESSING = "processing"  # task running at PiAPI
    DOWNLOADING = "downloading"  # task completed, copying the video into the store
    COMPLETED = "completed"  # video in the store
    FAILED = "failed"  # the task failed at PiAPI (error has its message)
    CANCELLED = "cancelled"
    SUBMISSION_UNKNOWN = "submission_unknown"  # never resent automatically; shown to the person
    TIMED_OUT = "timed_out"  # waiting gave up; the task may still finish (resumable)
    ERROR = "error"  # something else went wrong (error + hint say what and what next)

    @classmethod
    def parse(cls, value: object) -> "RunStage":
        if isinstance(value, RunStage):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return cls.ERROR

    @property
    def is_final(self) -> bool:
        """Nothing drives it any more: `await run` returns. TIMED_OUT can still be re-attached."""
        return self not in _ACTIVE

    @property
    def is_active(self) -> bool:
        return self in _ACTIVE

    @property
    def needs_attention(self) -> bool:
        """Final for automation, but the person should decide what happens next."""
        return self in (RunStage.SUBMISSION_UNKNOWN, RunStage.TIMED_OUT)

    def __str__(self) -> str:
        return self.value


_ACTIVE = frozenset(
    {RunStage.QUEUED, RunStage.SUBMITTING, RunStage.PENDING, RunStage.PROCESSING, RunStage.DOWNLOADING}
)
#: What `RunStore.unfinished()` returns: still moving, or waiting for the person.
UNFINISHED_STAGES = (*sorted(_ACTIVE, key=list(RunStage).index), RunStage.SUBMISSION_UNKNOWN, RunStage.TIMED_OUT)


class RunEvent(NamedTuple):
    """One entry of a run's status history."""

    at: datetime
    stage: RunStage
    status: TaskStatus | None
    percent: float | None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _stage_for_status(status: TaskStatus, current: RunStage) -> RunStage:
    if status in (TaskStatus.PENDING, TaskStatus.STAGED):
        return RunStage.PENDING
    if status in (TaskStatus.PROCESSING, TaskStatus.RUNNING, TaskStatus.COMPLETED):
        return RunStage.PROCESSING
    return current  # failed/cancelled are decided by the error path; unknown keeps the stage


class RunNotAttachedError(RuntimeError):
    """The run has no Runner to act for it (e.g. it was read straight from a RunStore)."""


Observer = Callable[["Run"], Any]


class Run:
    """One generation: its input, task id, status history, cost and local video.

    Mutable and observable (`observe`); awaitable (`await run` returns the run once it is
    final). Attributes are updated by the Runner; treat them as read-only.
    """

    def __init__(
        self,
        input: "FramepackInput",
        *,
        run_id: str | None = None,
        backend: str = "piapi",
        sweep_id: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        params = dict(input.to_params())
        for name in ("image_encoding", "max_side"):  # not in to_params(), needed to rebuild it
            value = getattr(input, name, None)
            if value is not None:
                params.setdefault(name, value)
        self._init_fields(run_id or uuid.uuid4().hex, params)
        self._input: FramepackInput | None = input
        self.start_image_sha = getattr(input.start_image, "sha256", None)
        end = getattr(input, "end_image", None)
        self.end_image_sha = getattr(end, "sha256", None) if end is not None else None
        self.backend = backend
        self.sweep_id = sweep_id
        self.created_at = created_at or utcnow()
        self.updated_at = self.created_at
        self._history = []
        self._record_event(self.created_at)

    def _init_fields(self, run_id: str, params: dict[str, Any]) -> None:
        self.run_id = run_id
        self.seq: int | None = None  # position in the store (newest = largest)
        self._params = params
        self._input = None
        self.task_id: str | None = None
        self.status: TaskStatus | None = None
        self.stage = RunStage.QUEUED
        self.percent: float | None = None
        self.logs: tuple[str, ...] = ()
        self.error: str | None = None
        self.hint: str | None = None
        self.backend = "piapi"
        self.sweep_id: str | None = None
        self.start_image_sha: str | None = None
        self.end_image_sha: str | None = None
        self.created_at = utcnow()
        self.updated_at: datetime | None = None
        self.submitted_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.video_sha: str | None = None
        self.video_path: Path | None = None
        self.video_url: str | None = None
        self._history: list[RunEvent] | None = None
        self._events_saved = 0
        self._store: RunStore | None = None
        self._runner: Runner | None = None
        self._owner: str | None = None
        self._driver: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self._observers: list[Observer] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._last_frame: Any = None

    @classmethod
    def _from_store(cls, store: "RunStore", run_id: str, params: dict[str, Any]) -> "Run":
        run = cls.__new__(cls)
        run._init_fields(run_id, params)
        run._store = store
        return run

    # ----------------------------------------------------------------- input, lazily
    @property
    def input(self) -> "FramepackInput":
        """The validated input. For stored runs it is rebuilt on first use from the stored images."""
        if self._input is None:
            self._input = _input_from_params(self._params, self._store)
        return self._input

    @property
    def params(self) -> dict[str, Any]:
        """JSON-safe description of the input (no bytes): what `FramepackInput.to_params()` gave."""
        return dict(self._params)

    @property
    def prompt(self) -> str:
        return str(self._params.get("prompt", ""))

    @property
    def negative_prompt(self) -> str:
        return str(self._params.get("negative_prompt", "") or "")

    @property
    def duration(self) -> int | None:
        value = self._params.get("duration")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def cost_usd(self) -> float:
        """What the run costs (or would cost) at PiAPI: $0.03 per second. Simulated runs are free
        but report the same price, flagged by `simulated`."""
        return round(COST_PER_SECOND * (self.duration or 0), 4)

    @property
    def simulated(self) -> bool:
        return self.backend == "simulator"

    @property
    def wall_time(self) -> float | None:
        """Seconds from sending the create request to the end (or to now, while it runs)."""
        if self.submitted_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.submitted_at).total_seconds())

    @property
    def history(self) -> list[RunEvent]:
        """Status history, oldest first. Stored runs read it from the store on first use."""
        if self._history is None:
            self._history = self._store.history(self.run_id) if self._store is not None else []
            self._events_saved = len(self._history)
        return list(self._history)

    # ----------------------------------------------------------------- state changes
    def done(self) -> bool:
        return self.stage.is_final

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call `callback(run)` after every change (already saved). Returns a function that stops it."""
        self._observers.append(callback)

        def unobserve() -> None:
            try:
                self._observers.remove(callback)
            except ValueError:
                pass

        return unobserve

    def _record_event(self, at: datetime | None = None) -> None:
        if self._history is None:
            self.history  # noqa: B018 - load what is stored before appending
        assert self._history is not None
        last = self._history[-1] if self._history else None
        event = RunEvent(at or utcnow(), self.stage, self.status, self.percent)
        if last is None or (last.stage, last.status, last.percent) != (event.stage, event.status, event.percent):
            self._history.append(event)

    def _set(self, **changes: Any) -> bool:
        """Apply changes; record a history entry when stage/status/percent moved. True if anything changed."""
        changed = False
        for name, value in changes.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        if changed:
            self.updated_at = utcnow()
            if {"stage", "status", "percent"} & changes.keys():
                self._record_event(self.updated_at)
        return changed

    def _apply_task(self, task: Task) -> bool:
        return self._set(
            status=task.status,
            percent=task.percent if task.percent is not None else self.percent,
            logs=tuple(task.logs) or self.logs,
            video_url=task.video_url or self.video_url,
            stage=_stage_for_status(task.status, self.stage),
        )

    def _unsaved_events(self) -> list[RunEvent]:
        if self._history is None:
            return []
        return self._history[self._events_saved :]

    def _notify(self) -> None:
        for callback in list(self._observers):
            try:
                callback(self)
            except Exception:  # an observer's bug must not stop the run
                log.exception("run observer %r failed", callback)
        if self.done():
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if fut.done():
                continue
            try:
                fut.get_loop().call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed
                pass

    # ----------------------------------------------------------------- awaiting
    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()

    async def wait(self) -> "Run":
        """Wait until the run is final and return it (same as `await run`)."""
        while not self.done():
            if _alive(self._driver) or _alive(self._watcher):
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut
                continue
            if self._store is None:
                raise RunNotAttachedError(
                    f"run {self.run_id[:8]} is {self.stage} but nothing is driving it. "
                    "Use runner.resume() to re-attach it."
                )
            # Driven elsewhere (another kernel), or by nobody: follow the store.
            self._store.refresh(self)
            if self.done():
                break
            owner, heartbeat_at = self._store.ownership(self.run_id)
            if _owner_is_stale(owner, heartbeat_at, self.run_id):
                raise RunNotAttachedError(
                    f"run {self.run_id[:8]} is {self.stage} but nothing is driving it (the kernel "
                    "that started it has stopped). Use runner.resume() to re-attach it."
                )
            await asyncio.sleep(POLL_STORE_SECONDS)
        return self

    # ----------------------------------------------------------------- results
    def last_frame(self) -> "Image.Image":
        """The video's last frame as a PIL image (decoded with PyAV on first use)."""
        if self._last_frame is None:
            path = self._require_video()
            self._last_frame = _decode_last_frame(path)
        return self._last_frame

    def show(self) -> None:
        """Display an inline player (outside the widget): the local video embedded in the page."""
        from IPython.display import Video, display

        if self.video_path is None or not Path(self.video_path).exists():
            display(self._status_text())
            return
        display(
            Video(
                str(self.video_path),
                embed=True,
                mimetype="video/mp4",
                html_attributes="controls loop muted playsinline",
            )
        )

    def _status_text(self) -> str:
        text = f"Run {self.run_id[:8]}: {self.stage}"
        if self.error:
            text += f": {self.error}"
        if self.hint:
            text += f"\n{self.hint}"
        elif self.stage is RunStage.COMPLETED:
            text += " (the video file is no longer in the store)"
        return text

    def _require_video(self) -> Path:
        if self.video_path is None or not Path(self.video_path).exists():
            raise FileNotFoundError(
                f"run {self.run_id[:8]} has no local video ({self.stage}). "
                + ("Await it first: `await run`." if not self.done() else (self.hint or ""))
            )
        return Path(self.video_path)

    def rerun(self, **changes: Any) -> "Run":
        """Start a new run with this input, changed as given (e.g. `prompt=`, `duration=`)."""
        if self._runner is None:
            raise RunNotAttachedError(
                "this run is not attached to a Runner (it was read from a RunStore directly). "
                "Use runner.start(run.input.replace(...)), or get runs from runner.list()/widget.runs."
            )
        new_input = self.input.replace(**changes) if changes else self.input
        return self._runner.start(new_input, sweep_id=None)

    def cancel(self) -> None:
        """Cancel this run (see `Runner.cancel`)."""
        if self._runner is None:
            raise RunNotAttachedError("this run is not attached to a Runner; use runner.cancel(run)")
        self._runner.cancel(self)

    def code(self) -> str:
        """A Python snippet that reproduces this run with `Client` and `FramepackInput`.

        Images are referenced by their file in the store; the API key is never included.
        """
        p = self._params

        def image_expr(key: str) -> str | None:
            info = p.get(key)
            if not info:
                return None
            if isinstance(info, dict) and info.get("url"):
                return repr(str(info["url"]))
            sha = info.get("sha256") if isinstance(info, dict) else None
            path = self._store.image_path(sha) if (self._store is not None and sha) else None
            if path is not None:
                return repr(str(path))
            return f"'<{key.replace('_', ' ')}: sha256 {sha}>'"

        args = [f"    prompt={self.prompt!r},", f"    start_image={image_expr('start_image')},"]
        end = image_expr("end_image")
        if end is not None:
            args.append(f"    end_image={end},")
        if self.negative_prompt:
            args.append(f"    negative_prompt={self.negative_prompt!r},")
        args.append(f"    duration={self.duration!r},")
        encoding = p.get("image_encoding")
        if encoding and encoding != "base64":
            args.append(f"    image_encoding={encoding!r},")
        out = f"run-{self.run_id[:8]}.mp4"
        lines = ["from framepack_widgets import Client, FramepackInput", ""]
        lines += ["inp = FramepackInput(", *args, ")", ""]
        if self.simulated:
            lines += [
                "# This run used the offline simulator (its video is not FramePack's).",
                "from framepack_widgets.simulator import Simulator",
                "",
                "with Simulator() as sim, Client(sim.api_key, base_url=sim.base_url) as client:",
            ]
        else:
            lines += [
                f"# Costs ${self.cost_usd:.2f} at PiAPI. The key is read from PIAPI_API_KEY.",
                "with Client() as client:",
            ]
        lines += ["    task = client.generate(inp)", f"    client.download(task, {out!r})", ""]
        return "\n".join(lines)

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        """Everything about the run as a JSON-safe dict (no bytes, no key)."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "seq": self.seq,
            "stage": self.stage.value,
            "status": self.status.value if self.status is not None else None,
            "task_id": self.task_id,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "duration": self.duration,
            "params": self.params,
            "percent": self.percent,
            "logs": list(self.logs),
            "error": self.error,
            "hint": self.hint,
            "cost_usd": self.cost_usd,
            "simulated": self.simulated,
            "backend": self.backend,
            "sweep_id": self.sweep_id,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "submitted_at": _iso(self.submitted_at),
            "finished_at": _iso(self.finished_at),
            "wall_time": self.wall_time,
            "video_path": str(self.video_path) if self.video_path is not None else None,
            "video_url": self.video_url,
            "video_sha": self.video_sha,
        }
        if history:
            data["history"] = [
                {
                    "at": _iso(e.at),
                    "stage": e.stage.value,
                    "status": e.status.value if e.status is not None else None,
                    "percent": e.percent,
                }
                for e in self.history
            ]
        return data

    def summary(self) -> dict[str, Any]:
        """The small JSON-safe dict the widget keeps per run in its trait."""
        prompt = self.prompt
        wall = self.wall_time
        return {
            "run_id": self.run_id,
            "prompt": prompt if len(prompt) <= 80 else prompt[:79] + "…",
            "duration": self.duration,
            "stage": self.stage.value,
            "status": self.status.value if self.status is not None else None,
            "percent": self.percent,
            "wall_time": round(wall, 1) if wall is not None else None,
            "cost_usd": self.cost_usd,
            "simulated": self.simulated,
            "backend": self.backend,
            "error": self.error,
            "hint": self.hint,
            "has_video": self.video_path is not None,
            "sweep_id": self.sweep_id,
            "created_at": _iso(self.created_at),
        }

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        extra = f" {self.percent:.0f}%" if self.percent is not None and not self.done() else ""
        video = f" video={self.video_path.name}" if self.video_path is not None else ""
        return f"<Run {self.run_id[:8]} {self.stage}{extra} {self.duration}s {prompt!r}{video}>"


def _alive(task: "asyncio.Task[None] | None") -> bool:
    return task is not None and not task.done() and not task.get_loop().is_closed()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _input_from_params(params: dict[str, Any], store: "RunStore | None") -> "FramepackInput":
    """Rebuild a FramepackInput from stored params and the store's normalised image files."""
    from .inputs import FramepackInput

    def image(key: str) -> Any:
        info = params.get(key)
        if not info:
            return None
        if info.get("url"):
            return info["url"]
        if store is None:
            raise RunNotAttachedError(f"the {key.replace('_', ' ')} is in a run store this run is not attached to")
        return store.image_source(info)

    kwargs: dict[str, Any] = {
        "end_image": image("end_image"),
        "negative_prompt": params.get("negative_prompt", "") or "",
        "duration": params.get("duration", 10),
    }
    for name in ("image_encoding", "max_side"):
        if params.get(name):
            kwargs[name] = params[name]
    return FramepackInput(params.get("prompt", ""), image("start_image"), **kwargs)


def _decode_last_frame(path: Path) -> "Image.Image":
    import av

    def last_of(seek: bool) -> Any:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if seek and stream.duration and stream.time_base:
                back = int(1 / stream.time_base)  # one second, in the stream's units
                container.seek(max(0, stream.duration - back), stream=stream)
            frame = None
            for frame in container.decode(stream):  # noqa: B007
                pass
            return frame

    frame = last_of(seek=True) or last_of(seek=False)
    if frame is None:
        raise ValueError(f"{path} has no video frames")
    return frame.to_image()


# --------------------------------------------------------------------- ownership
# A run is "owned" by the Runner driving it: host:pid:token in the store, refreshed by a
# heartbeat. Another Runner may take a run over only when its owner is gone. Taking over a
# QUEUED run is still guarded by a compare-and-set on QUEUED -> SUBMITTING, so a create
# request is sent at most once per run whatever happens.
_HOST = socket.gethostname()
_DRIVING: dict[str, Run] = {}  # run_id -> Run driven by some Runner in this process
# run_id -> the Run object handed out in this process, so everyone holds the same object.
_KNOWN: "weakref.WeakValueDictionary[str, Run]" = weakref.WeakValueDictionary()
_STATE_FIELDS = (
    "seq", "created_at", "updated_at", "stage", "status", "task_id", "percent", "logs", "error", "hint",
    "backend", "sweep_id", "start_image_sha", "end_image_sha", "submitted_at", "finished_at",
    "video_sha", "video_url", "video_path",
)  # fmt: skip


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill it on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed but unreaped child is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _is_driven_here(run_id: str) -> bool:
    run = _DRIVING.get(run_id)
    return run is not None and not run.done() and _alive(run._driver)


def _owner_is_stale(owner: str | None, heartbeat_at: float | None, run_id: str) -> bool:
    """True when nobody alive is driving the run, so another Runner may take it over."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return not _is_driven_here(run_id)
        return not _pid_alive(pid)
    return heartbeat_at is None or time.time() - heartbeat_at > STALE_SECONDS


# --------------------------------------------------------------------- the runner
def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"Runner.{what}() needs a running asyncio event loop. In Jupyter call it from a cell "
            "(the kernel runs one); in a script call it inside `async def main()` run by "
            "`asyncio.run(main())`. For a simple blocking call use Client.generate()."
        ) from None


def _hint_for(exc: BaseException, *, task_id: str | None) -> str:
    follow = " The task may still be running: runner.reattach(run) follows it again." if task_id else ""
    if task_id is None:
        prefix = "Nothing was charged: PiAPI refused the request before creating a task. "
    else:
        prefix = ""
    if isinstance(exc, AuthenticationError):
        return prefix + "Check the API key (PIAPI_API_KEY) and that your plan allows Framepack."
    if isinstance(exc, RateLimitError):
        return prefix + "PiAPI is rate limiting: wait a minute, then try again (fewer runs at once helps)."
    if isinstance(exc, BadRequestError):
        return prefix + "Check the prompt, duration and images, then try again."
    if isinstance(exc, NotFoundError):
        return "PiAPI no longer knows this task id (it may have expired)."
    if isinstance(exc, ServerError):
        return prefix + "PiAPI had a server error; try again later." + follow
    if isinstance(exc, APIConnectionError):
        return prefix + "Check the network connection." + follow
    if isinstance(exc, DownloadError):
        return (
            "The task finished (and was billed) but its video could not be downloaded. "
            "runner.reattach(run) tries again; PiAPI's result links expire after a while."
        )
    return prefix + "See the error message." + follow


def _accepts_hint(wait: Callable[..., Any]) -> bool:
    """Whether a client's wait() takes `expected_seconds` (clients written to the stable
    signature `wait(task_or_id, *, timeout=None, on_update=None)` do not)."""
    try:
        params = inspect.signature(wait).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "expected_seconds" or p.kind is p.VAR_KEYWORD for p in params)


class Runner:
    """Drives runs on the running asyncio loop: store first, then create, wait and download.

    `on_change(run)` is called after every saved change of any run this runner drives.
    At most `max_concurrent` runs are in flight at PiAPI at once; the others wait QUEUED
    (stored, not sent). Runs re-attached by `resume()` are already at PiAPI, so they do
    not wait for a slot (but they occupy one).
    """

    def __init__(
        self,
        client: "AsyncClient",
        store: "RunStore",
        *,
        on_change: Callable[[Run], Any] | None = None,
        max_concurrent: int = 3,
        timeout: float | None = None,
        queued_max_age: timedelta | None = QUEUED_MAX_AGE,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.client = client
        self.store = store
        self.on_change = on_change
        self.max_concurrent = max_concurrent
        self.timeout = timeout
        self.queued_max_age = queued_max_age
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._active: dict[str, Run] = {}  # run_id -> Run this runner is driving
        self._in_flight = 0
        self._slot_free: asyncio.Condition | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._forwarding: set[str] = set()

    @property
    def backend(self) -> str:
        return "simulator" if getattr(self.client, "is_simulator", False) else "piapi"

    # ----------------------------------------------------------------- public API
    def start(self, input: "FramepackInput", *, sweep_id: str | None = None) -> Run:
        """Store a new run (QUEUED) and schedule it; returns at once. Await the run for its end."""
        _running_loop("start")
        if not hasattr(input, "to_params"):
            raise TypeError(f"Runner.start() takes a FramepackInput, not {type(input).__name__}")
        run = Run(input, backend=self.backend, sweep_id=sweep_id)
        _KNOWN[run.run_id] = run
        run._store = self.store
        run._runner = self
        run._owner = self.owner
        for source in (input.start_image, getattr(input, "end_image", None)):
            if source is not None:
                self.store.put_image(source)
        self.store.save(run)  # before anything is sent (DESIGN: "Nothing lost")
        self._drive(run, submit=True)
        self._changed(run)
        return run

    def cancel(self, run: Run) -> None:
        """Cancel a run. Before sending: nothing is charged. While the create request is in
        flight: cancelled as soon as PiAPI answers. Afterwards: PiAPI is asked to cancel; if it
        cannot (PiAPI documents cancelling only while pending), the run is marked cancelled here
        and its hint says the task may still be billed. Returns at once; `await run` to wait."""
        live = _DRIVING[run.run_id] if _is_driven_here(run.run_id) else _KNOWN.get(run.run_id, run)
        if live.done() or live._cancel_requested:  # idempotent: a second click changes nothing
            return
        if _is_driven_here(live.run_id):
            live._cancel_requested = True
            if live.stage is not RunStage.SUBMITTING:  # never interrupt a create request
                assert live._driver is not None
                live._driver.cancel()
            return
        # Nobody drives it in this process: act on the stored run directly.
        _running_loop("cancel")
        live._store = live._store or self.store
        live._runner = self
        if not self.store.claim(live.run_id, self.owner, _owner_is_stale):
            raise RuntimeError(
                f"run {live.run_id[:8]} is being driven by another kernel; cancel it there."
            )
        live._owner = self.owner
        live._cancel_requested = True
        self._track(live, asyncio.get_running_loop().create_task(self._cancel_undriven(live)))

    def resume(self) -> list[Run]:
        """Re-attach the store's unfinished runs; returns them (including those needing attention).

        - PENDING/PROCESSING/DOWNLOADING/TIMED_OUT with a task id: followed again by task id.
        - QUEUED (stored, certainly never sent): sent now, unless older than `queued_max_age`
          (then CANCELLED: nothing was charged).
        - SUBMITTING without a task id (the kernel stopped mid-request): SUBMISSION_UNKNOWN.
        - SUBMISSION_UNKNOWN: returned to be shown, never resent.
        - Runs driven by another live kernel are returned as snapshots (`await` follows the store).
        - Runs made on the other backend (simulator vs PiAPI) are left alone: never sent across.
        """
        _running_loop("resume")
        out: list[Run] = []
        for fresh in self.store.unfinished():
            if fresh.backend != self.backend:
                # Made on the other backend: a simulator run sent to PiAPI would be billed, and
                # a PiAPI task id means nothing to the simulator. Leave it for a matching runner.
                continue
            if _is_driven_here(fresh.run_id):  # another Runner of this process drives it
                live = _DRIVING[fresh.run_id]
                self._forward_changes(live)
                out.append(live)
                continue
            run = self._adopt(fresh)
            out.append(run)
            if run.stage is RunStage.SUBMISSION_UNKNOWN:
                continue  # shown to the person, never resent
            if self.store.claim(run.run_id, self.owner, _owner_is_stale):
                self._take_over(run)
            else:
                self._watch(run)  # another kernel drives it: show its progress, take over if it stops
        return out

    def _take_over(self, run: Run) -> None:
        """Continue a run this runner has just claimed, by the rules in `resume()`."""
        self.store.refresh(run)  # what the previous owner wrote last
        run._owner = self.owner
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The create request's outcome is unknown (the kernel stopped while sending it).",
                         hint=HINT_INTERRUPTED_SUBMIT)
        elif run.stage is RunStage.QUEUED:
            age = utcnow() - run.created_at
            if self.queued_max_age is not None and age > self.queued_max_age:
                self._finish(run, RunStage.CANCELLED,
                             error="Never sent: the kernel stopped before sending it.",
                             hint=f"Not sent automatically because it was queued {_ago(age)}. "
                                  "Nothing was charged; run.rerun() sends it now.")
            else:
                self._drive(run, submit=True)
        elif run.stage.is_final and run.stage is not RunStage.TIMED_OUT:
            self._release(run)  # finished meanwhile
        elif run.task_id:
            self._drive(run, submit=False)
        else:  # an active stage without a task id cannot be followed: say so
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The run has no task id, so it cannot be followed.",
                         hint=HINT_SUBMISSION_UNKNOWN)

    def _watch(self, run: Run) -> None:
        if _alive(run._watcher):
            return
        task = asyncio.get_running_loop().create_task(self._watch_loop(run), name=f"framepack-watch-{run.run_id[:8]}")
        run._watcher = task
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch_loop(self, run: Run) -> None:
        try:
            while not run.done():
                await asyncio.sleep(WATCH_SECONDS)
                before = (run.updated_at, run.stage)
                self.store.refresh(run)
                if (run.updated_at, run.stage) != before:
                    self._changed(run)
                if run.done() or _is_driven_here(run.run_id):
                    return
                if run.stage is not RunStage.SUBMISSION_UNKNOWN and self.store.claim(
                    run.run_id, self.owner, _owner_is_stale
                ):
                    log.info("run %s: the kernel driving it stopped; taking it over", run.run_id)
                    self._take_over(run)
                    return
        finally:
            run._wake_waiters()

    def _forward_changes(self, run: Run) -> None:
        """Report changes of a run driven by another Runner of this process to our on_change."""
        if self.on_change is None or run._runner is self or run.run_id in self._forwarding:
            return
        self._forwarding.add(run.run_id)
        on_change = self.on_change

        def forward(r: Run) -> None:
            try:
                on_change(r)
            except Exception:
                log.exception("Runner.on_change failed")

        run.observe(forward)

    def reattach(self, run: Run) -> Run:
        """Follow a run with a task id again (after TIMED_OUT, a network ERROR or a failed download)."""
        _running_loop("reattach")
        if _is_driven_here(run.run_id):
            return _DRIVING[run.run_id]
        if not run.task_id:
            raise ValueError(
                f"run {run.run_id[:8]} has no task id to follow ({run.stage}); use run.rerun() to send it again"
            )
        if run.stage is RunStage.COMPLETED and run.video_path is not None:
            return run
        if not self.store.claim(run.run_id, self.owner, _owner_is_stale):
            raise RuntimeError(f"run {run.run_id[:8]} is being driven by another kernel")
        run._store, run._runner, run._owner = run._store or self.store, self, self.owner
        self._drive(run, submit=False)
        return run

    def attach(self, run: Run, task_id: str) -> Run:
        """Resolve a SUBMISSION_UNKNOWN run: you found its task in your PiAPI task list."""
        if run.stage is not RunStage.SUBMISSION_UNKNOWN:
            raise ValueError(f"attach() is for runs whose submission is unknown; this one is {run.stage}")
        task_id = str(task_id).strip()
        if not task_id:
            raise ValueError("give the task id from your PiAPI task list")
        run._set(task_id=task_id, stage=RunStage.PENDING)
        return self.reattach(run)

    def dismiss(self, run: Run) -> None:
        """Stop showing a SUBMISSION_UNKNOWN or TIMED_OUT run as unfinished (it becomes ERROR)."""
        if not run.stage.needs_attention:
            raise ValueError(f"dismiss() is for runs that need attention; this one is {run.stage}")
        run._store, run._runner = run._store or self.store, self
        note = "Dismissed. If PiAPI created a task for it, that task may still have been billed."
        run._set(stage=RunStage.ERROR, error=run.error or "Dismissed.", hint=note, finished_at=run.finished_at or utcnow())
        self._save(run)

    def get(self, run_id: str) -> Run:
        """A run by id: the same object this process already handed out (kept up to date),
        else read from the store."""
        if _is_driven_here(run_id):
            self._forward_changes(_DRIVING[run_id])
            return _DRIVING[run_id]
        return self._adopt(self.store.get(run_id))

    def list(self, limit: int | None = 50, offset: int = 0, **filters: Any) -> list[Run]:
        """Runs newest first (see `RunStore.list`); runs this process already handed out come
        back as the same objects (live ones as they are, others updated from the store)."""
        return [self._adopt(run) for run in self.store.list(limit=limit, offset=offset, **filters)]

    def _adopt(self, fresh: Run) -> Run:
        """Return the process's object for this run, updated from `fresh` (just read from the store)."""
        if _is_driven_here(fresh.run_id):
            self._forward_changes(_DRIVING[fresh.run_id])
            return _DRIVING[fresh.run_id]
        known = _KNOWN.get(fresh.run_id)
        if known is None or known is fresh:
            known = fresh
        else:
            for name in _STATE_FIELDS:
                setattr(known, name, getattr(fresh, name))
            known._history, known._events_saved = None, 0
        known._store = known._store or self.store
        known._runner = self
        _KNOWN[known.run_id] = known
        return known

    @property
    def runs(self) -> list[Run]:
        """Every stored run, newest first (lazy: no image bytes are read)."""
        return self.list(limit=None)

    @property
    def active(self) -> list[Run]:
        """Runs this runner is driving now (not final yet)."""
        return [run for run in self._active.values() if not run.done()]

    async def wait_all(self) -> list[Run]:
        """Wait until every run this runner drives is final."""
        runs = list(self._active.values())
        for run in runs:
            await run
        return runs

    async def aclose(self) -> None:
        """Stop driving (runs stay in the store as they are and can be resumed later)."""
        drivers = [r._driver for r in self._active.values() if r._driver is not None]
        drivers += list(self._watchers)
        for d in drivers:
            d.cancel()
        if drivers:
            await asyncio.gather(*drivers, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    # ----------------------------------------------------------------- driving
    def _drive(self, run: Run, *, submit: bool) -> None:
        loop = asyncio.get_running_loop()
        run._runner = self
        run._store = run._store or self.store
        if not submit and not run.stage.is_active:  # re-attaching after TIMED_OUT / ERROR / attach()
            stage = _stage_for_status(run.status, RunStage.PENDING) if run.status else RunStage.PENDING
            run._set(stage=stage, error=None, hint=None, finished_at=None)
            self._save(run)  # active again before anyone awaits it
        self._track(run, loop.create_task(self._execute(run, submit=submit), name=f"framepack-run-{run.run_id[:8]}"))

    def _track(self, run: Run, task: asyncio.Task[None]) -> None:
        run._driver = task
        self._active[run.run_id] = run
        _DRIVING[run.run_id] = run

        def finished(t: asyncio.Task[None]) -> None:
            if run._driver is t:  # not re-driven meanwhile
                self._active.pop(run.run_id, None)
                if _DRIVING.get(run.run_id) is run:
                    del _DRIVING[run.run_id]
            run._wake_waiters()  # waiters re-check (e.g. the loop stopping mid-run)

        task.add_done_callback(finished)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while self._active:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            ids = list(self._active)
            try:
                self.store.heartbeat(ids, self.owner)
            except Exception:  # pragma: no cover - a busy store must not kill the runner
                log.exception("heartbeat failed")

    def _save(self, run: Run, **kwargs: Any) -> bool:
        ok = self.store.save(run, **kwargs)
        if ok:
            self._changed(run)
        return ok

    def _changed(self, run: Run) -> None:
        run._notify()
        if self.on_change is not None:
            try:
                self.on_change(run)
            except Exception:
                log.exception("Runner.on_change failed")

    def _finish(self, run: Run, stage: RunStage, *, error: str | None = None, hint: str | None = None) -> None:
        run._owner = None
        run._set(stage=stage, error=error, hint=hint, finished_at=utcnow())
        self._save(run)

    def _release(self, run: Run) -> None:
        run._owner = None
        self.store.save(run)

    async def _acquire_slot(self, wait: bool) -> None:
        if self._slot_free is None:
            self._slot_free = asyncio.Condition()
        async with self._slot_free:
            if wait:
                await self._slot_free.wait_for(lambda: self._in_flight < self.max_concurrent)
            self._in_flight += 1

    async def _release_slot(self) -> None:
        assert self._slot_free is not None
        async with self._slot_free:
            self._in_flight -= 1
            self._slot_free.notify_all()

    async def _execute(self, run: Run, *, submit: bool) -> None:
        slot = False
        try:
            await self._acquire_slot(wait=submit)
            slot = True
            if submit:
                task = await self._submit(run)
                if task is None:
                    return
            else:
                task = None
            await self._follow(run, task)
        except asyncio.CancelledError:
            if run._cancel_requested:
                await self._cancelled(run)
                return
            # Stopped from outside (the loop is shutting down): keep the stored stage so a
            # later resume() re-attaches. A create request cut off mid-flight is unknown.
            if run.stage is RunStage.SUBMITTING and run.task_id is None:
                self._finish_quietly(run, RunStage.SUBMISSION_UNKNOWN,
                                     "The create request was interrupted; its outcome is unknown.",
                                     HINT_SUBMISSION_UNKNOWN)
            raise
        except SubmissionUnknownError as exc:
            self._finish(run, RunStage.SUBMISSION_UNKNOWN, error=str(exc), hint=HINT_SUBMISSION_UNKNOWN)
        except TaskFailedError as exc:
            task = exc.task
            run._apply_task(task)
            stage = RunStage.CANCELLED if task.status is TaskStatus.CANCELLED else RunStage.FAILED
            message = task.error or str(exc)
            hint = None
            if stage is RunStage.FAILED:
                hint = "PiAPI reported the task as failed. Change the input (or try again later) and rerun."
            self._finish(run, stage, error=message, hint=hint)
        except TaskTimeoutError as exc:
            if exc.last_task is not None:
                run._apply_task(exc.last_task)
            self._finish(run, RunStage.TIMED_OUT, error=str(exc), hint=HINT_TIMED_OUT)
        except (APIError, DownloadError) as exc:
            self._finish(run, RunStage.ERROR, error=str(exc), hint=_hint_for(exc, task_id=run.task_id))
        except Exception as exc:  # a bug or an unexpected failure: keep it visible on the run
            log.exception("run %s failed unexpectedly", run.run_id)
            self._finish(run, RunStage.ERROR, error=f"Unexpected error: {type(exc).__name__}: {exc}",
                         hint=_hint_for(exc, task_id=run.task_id))
        finally:
            if slot:
                await asyncio.shield(self._release_slot())

    def _finish_quietly(self, run: Run, stage: RunStage, error: str, hint: str) -> None:
        try:
            self._finish(run, stage, error=error, hint=hint)
        except Exception:  # pragma: no cover - shutting down; resume() will sort it out
            log.exception("could not save run %s while stopping", run.run_id)

    async def _submit(self, run: Run) -> Task | None:
        if run._cancel_requested:
            await self._cancelled(run)
            return None
        run._set(stage=RunStage.SUBMITTING, submitted_at=utcnow(), error=None, hint=None)
        # Compare-and-set on QUEUED -> SUBMITTING: a create request is sent at most once per run.
        if not self._save(run, expect_stage=RunStage.QUEUED):
            self.store.refresh(run)
            log.warning("run %s was taken over by another runner; not sending it", run.run_id)
            return None
        task = await self.client.create_task(run.input)
        run._set(task_id=task.task_id)
        run._apply_task(task)
        if run.stage is RunStage.SUBMITTING:
            run._set(stage=RunStage.PENDING)
        self._save(run)
        if run._cancel_requested:  # cancel() arrived while the create request was in flight
            await self._cancelled(run)
            return None
        return task

    def _wait_hint(self, run: Run) -> dict[str, float]:
        """`expected_seconds` for client.wait when the store has learned this backend's timing
        (basis "history"): the expected wall time minus the time since submission. Empty
        otherwise (a guessed default would only mislead the poll), and never raises."""
        try:
            if run.submitted_at is None or run.duration is None or not _accepts_hint(self.client.wait):
                return {}
            estimate = self.store.estimate(run.duration, backend=self.backend)
            if getattr(estimate, "basis", None) != "history":
                return {}
            since = (utcnow() - run.submitted_at).total_seconds()
            return {"expected_seconds": max(0.0, float(estimate.seconds) - since)}
        except Exception:  # a store problem must never break a run
            log.debug("no ETA hint for run %s", run.run_id, exc_info=True)
            return {}

    async def _follow(self, run: Run, task: Task | None) -> None:
        assert run.task_id is not None

        def on_update(snapshot: Task) -> None:
            if run._apply_task(snapshot):
                self._save(run)

        try:
            # Also when resuming a download: one GET gives a fresh URL (the stored one may have
            # expired, or point at a simulator that died with the previous kernel).
            task = await self.client.wait(
                task or run.task_id, timeout=self.timeout, on_update=on_update, **self._wait_hint(run)
            )
        except NotFoundError:
            if run.stage is not RunStage.DOWNLOADING or not run.video_url:
                raise
            task = Task(task_id=run.task_id, status=TaskStatus.COMPLETED, video_url=run.video_url)
        run._apply_task(task)
        run._set(stage=RunStage.DOWNLOADING)
        self._save(run)
        tmp = self.store.temp_path(f"{run.run_id}.mp4")
        try:
            written = await self.client.download(task, tmp)
            final = self.store.add_video(Path(written))
        finally:
            if tmp.exists():
                tmp.unlink()
        run._owner = None
        run._set(
            stage=RunStage.COMPLETED,
            video_path=final,
            video_sha=final.stem,
            percent=100.0,
            finished_at=utcnow(),
            error=None,
            hint=None,
        )
        self._save(run)

    async def _cancelled(self, run: Run) -> None:
        """The person cancelled: ask PiAPI when a task exists, then mark the run."""
        if run.task_id is None:
            self._finish(run, RunStage.CANCELLED, error="Cancelled before it was sent.", hint="Nothing was charged.")
            return
        if run.stage is RunStage.DOWNLOADING or run.status is TaskStatus.COMPLETED:
            self._finish(run, RunStage.CANCELLED, error="Cancelled while downloading.",
                         hint="The task had already completed at PiAPI, so it was billed. "
                              "runner.reattach(run) downloads the video after all.")
            return
        note: str
        try:
            answer = await self.client.cancel(run.task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not supported, not pending any more, network...
            note = (f"PiAPI did not confirm the cancel ({type(exc).__name__}: {exc}); the task may "
                    "still run and be billed. Check your PiAPI task list.")
        else:
            if answer is not None and getattr(answer, "status", None) is TaskStatus.CANCELLED:
                run._apply_task(answer)
                note = "Cancelled at PiAPI before it started."
            else:
                note = ("Cancelled here; PiAPI did not confirm it, so the task may still run and be "
                        "billed. Check your PiAPI task list.")
        self._finish(run, RunStage.CANCELLED, error="Cancelled.", hint=note)

    async def _cancel_undriven(self, run: Run) -> None:
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            # Nobody is sending it any more: the outcome cannot be known. Say so, don't guess.
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The create request's outcome is unknown.", hint=HINT_SUBMISSION_UNKNOWN)
            return
        await self._cancelled(run)


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours ago" if hours < 48 else f"{hours / 24:.0f} days ago"

