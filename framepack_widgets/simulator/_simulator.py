"""The `Simulator`: the lifecycle of one server, and PiAPI's endpoints over the task clock.

`Simulator` is the package's one public object. It owns the pieces the other modules define
(the HTTP server of `_http`, the task book of `_tasks`, the render pool of `_renderpool`,
the faults of `_faults`, the state folder of `_state`, the webhooks of `_webhooks`), starts
and stops them together, and answers each endpoint as PiAPI's FramePack service does:
create takes a request `_bodies` accepts and makes a task on the clock of `_clock`; get and
cancel look the task up; account derives the ledger from the tasks; upload and download
keep and serve files. In replay mode the answers of `_replaying` stand in for create, get
and cancel.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._sqlite import private_folder, write_private
from ..constants import MODEL
from ..errors import InvalidInputError
from ._bodies import parse_create, parse_upload
from ._clock import DEFAULT_PENDING_SECONDS, UNITS_PER_USD, SimTask, default_processing_seconds
from ._errors import SimulatorError, UnknownTaskError
from ._faults import Fault, FaultBook
from ._http import RequestRecord, Response, SimHTTPServer, error_response, file_response, json_response, route
from ._render import resolve_long_side
from ._renderpool import RenderJob, RenderPool
from ._replay import Replay, load_trace
from ._replaying import ReplayAnswers
from ._shapes import resolve_profile
from ._tasks import TaskBook
from ._webhooks import WebhookDelivery, WebhookSender

if TYPE_CHECKING:  # pragma: no cover
    from ._state import PruneResult, SimState

__all__ = ["Simulator"]

logger = logging.getLogger("framepack_widgets.simulator")

class Simulator:
    """A PiAPI-compatible server on loopback that makes synthetic FramePack videos.

    `Simulator(time_scale=20).start()` or `with Simulator() as sim: ...`; point a client
    at `sim.base_url` with `sim.api_key`. The clock (simulated seconds, divided by
    `time_scale`): pending `pending_seconds` (default 3), then processing
    `processing_seconds` (default 4 + 3 per second of video; a float or a callable
    taking the duration), then completed once the MP4 is rendered;
    `expected_seconds(duration)` is that clock in wall seconds.

    `profile` is how answers look: "realistic" (the default, what PiAPI documents for
    Framepack: no percent, `output: null` until the video exists, empty logs) or "rich"
    (a percent and log lines while processing); without it FRAMEPACK_SIM_PROFILE decides.
    `replay` (a trace file written by `framepack record`, or its dict) makes the simulator
    answer creates and GETs with that trace's recorded answers, in order (see `_replay`).
    `long_side` is the rendered videos' long side in pixels (default 640, or
    FRAMEPACK_SIM_LONG_SIDE: smaller renders faster). A create whose `config.webhook_config`
    names an endpoint gets the task's final envelope POSTed there (see `_webhooks`; a failed
    delivery is tried again after `webhook_retry_seconds`).

    With `state_dir`, tasks outlive this object and this process, as they would on a hosted
    service: every task (its wall-clock start, its clock, its inputs, a fault-driven failure,
    its cancel) is stored in that folder, with its input images (once, by sha256) and its
    rendered video. A new Simulator over the same folder (a new kernel, another process,
    even one running at the same time) serves those tasks by id: their clock continues in
    wall time, a video that was never finished is rendered again from the stored images,
    and `video_url` points at the new simulator. The folder keeps inputs and outputs until
    `prune_state()` is called. Without `state_dir` everything lives in memory and a
    temporary folder, and is gone after `stop()`.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        time_scale: float = 1.0,
        faults: Iterable[Fault] | None = None,
        api_key: str | None = None,
        pending_seconds: float | None = None,
        processing_seconds: float | Callable[[int], float] | None = None,
        workdir: str | Path | None = None,
        render_workers: int = 2,
        long_side: int | None = None,
        label: bool = True,
        credits_usd: float | None = None,
        state_dir: str | Path | None = None,
        profile: str | None = None,
        replay: "str | Path | Mapping[str, Any] | None" = None,
        echo_key: bool = False,
        webhook_retry_seconds: float = 5.0,
    ) -> None:
        if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
            raise InvalidInputError("time_scale must be a positive number (10 runs the clock ten times faster)")
        if pending_seconds is not None and pending_seconds < 0:
            raise InvalidInputError("pending_seconds must be >= 0")
        if processing_seconds is not None and not callable(processing_seconds) and processing_seconds < 0:
            raise InvalidInputError("processing_seconds must be >= 0 or a callable(duration) -> seconds")
        self.profile = resolve_profile(profile)
        #: A hostile API for tests: every answer echoes the caller's key back (in its message,
        #: the task's logs and error, and a header), as a careless real one might.
        self.echo_key = bool(echo_key)
        trace = Replay(load_trace(replay)) if replay is not None else None  # read (and checked) first
        self.host = host
        self._requested_port = int(port)
        self.time_scale = float(time_scale)
        self.pending_seconds = DEFAULT_PENDING_SECONDS if pending_seconds is None else float(pending_seconds)
        self.processing_seconds = processing_seconds
        self.api_key = api_key or "sim-" + secrets.token_urlsafe(18)
        self.long_side = resolve_long_side(long_side)
        self.label = bool(label)
        if state_dir is not None and workdir is not None and (
            Path(workdir).expanduser().resolve() != Path(state_dir).expanduser().resolve()
        ):
            raise InvalidInputError("give state_dir or workdir, not both: with state_dir, uploads and videos live there")
        # Starting balance (default $100). With state_dir the balance is shared by every
        # simulator over that folder: a value given here is stored there, else the stored one is used.
        self.credits_usd = 100.0 if credits_usd is None else float(credits_usd)
        self._credits_given = credits_usd is not None
        self._render_workers = int(render_workers)
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = None
        self._state_dir = Path(state_dir).expanduser() if state_dir is not None else None
        self._state: SimState | None = None
        self._uploads_dir: Path | None = None
        self._renders_dir: Path | None = None
        self._faults = FaultBook()
        for fault in faults or ():
            self._faults.add(fault)
        self._requests: deque[RequestRecord] = deque(maxlen=100_000)
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self._replay = ReplayAnswers(trace, self._stopping) if trace is not None else None
        self._book = TaskBook(self._stopping)
        self._webhooks = WebhookSender(self.task_data, self._stopping, retry_seconds=webhook_retry_seconds)
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._renderer: RenderPool | None = None
        self._port: int | None = None
        self._stopped = False
        self._finalizer: weakref.finalize | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "Simulator":
        """Bind, start serving in a background thread, and return self."""
        if self._server is not None:
            return self
        if self._stopped:
            raise SimulatorError("this simulator was stopped; create a new Simulator to serve again")
        if self._state_dir is not None:
            self._state = self._open_state()
            self._workdir = self._state.folder
            self._uploads_dir, self._renders_dir = self._state.uploads_dir, self._state.files_dir
        else:
            if self._workdir_arg is not None:
                self._workdir = self._workdir_arg
                private_folder(self._workdir)  # uploads are people's images
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix="framepack-sim-"))
                # Also removed at interpreter exit when stop() is never called.
                self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._workdir), True)
            self._uploads_dir, self._renders_dir = self._workdir / "uploads", self._workdir / "renders"
            private_folder(self._uploads_dir)
            private_folder(self._renders_dir)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = SimHTTPServer((self.host, self._requested_port), family, answer=self._answer,
                                   record=self._record, faults=self._faults, stopping=self._stopping,
                                   echo_key=self.echo_key)
        except OSError:
            self._close_state()
            self._cleanup_workdir()
            raise
        self._server = server
        self._port = server.server_address[1]
        self._renderer = RenderPool(
            self._renders_dir, workers=self._render_workers, long_side=self.long_side,
            label=self.label, stopping=self._stopping, on_done=self._book.render_done,
            shared=self._state is not None,
        )
        self._book.open(self._state, self._renders_dir, self._renderer)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="framepack-simulator", daemon=True
        )
        self._thread.start()
        logger.info("simulator serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, stop renders, remove the temporary workdir."""
        if self._server is None:
            self._stopped = True
            return
        server, self._server = self._server, None
        self._stopped = True
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._renderer is not None:
            self._renderer.shutdown()
        self._webhooks.stop()
        self._close_state()
        self._cleanup_workdir()

    def _open_state(self) -> "SimState":
        import sqlite3

        from ._state import SimState

        assert self._state_dir is not None
        try:
            state = SimState(self._state_dir)
        except (OSError, sqlite3.Error) as exc:
            raise SimulatorError(
                f"cannot keep the simulator's state in {self._state_dir} ({exc.__class__.__name__}: {exc}); "
                "give state_dir a writable folder on a local disk"
            ) from exc
        try:
            if self._credits_given:
                state.set_meta("credits_usd", repr(self.credits_usd))
            else:
                self.credits_usd = float(state.set_meta("credits_usd", repr(self.credits_usd), only_if_missing=True))
        except BaseException:
            state.close()
            raise
        return state

    def _close_state(self) -> None:
        self._book.close()
        state, self._state = self._state, None
        if state is not None:
            state.close()

    def _cleanup_workdir(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs rmtree once

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:  # never the key
        state = "running" if self.running else ("stopped" if self._stopped else "not started")
        where = self.base_url if self._port is not None else f"{self.host}:{self._requested_port or '?'}"
        kept = f", state_dir={str(self._state_dir)!r}" if self._state_dir is not None else ""
        return f"<Simulator {where} {state}, time_scale={self.time_scale:g}{kept}>"

    # ---------------------------------------------------------------- public views

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            if self._requested_port:
                return self._requested_port
            raise SimulatorError("the simulator picks its port when started: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (a wildcard bind address is shown as loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def workdir(self) -> Path | None:
        """Where uploads and rendered MP4s live (a temporary folder unless `workdir=` or `state_dir=` was given)."""
        return self._workdir

    @property
    def state_dir(self) -> Path | None:
        """The folder tasks are kept in across processes (None: in memory only)."""
        return self._state_dir

    def expected_seconds(self, duration: int) -> float:
        """Wall seconds this simulator's clock takes for a task of `duration` seconds of video:
        pending plus processing, divided by `time_scale`.

        What its clock promises, before any fault: a task completes then, or a little later
        when its video is still rendering. Works before `start()` too.
        """
        return (self.pending_seconds + self._processing_seconds(duration)) / self.time_scale

    def inject(self, fault: Fault) -> Fault:
        """Add a fault at runtime; it applies to requests arriving from now on."""
        self._faults.add(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Faults that may still apply."""
        return self._faults.active

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests received so far (oldest first)."""
        with self._requests_lock:
            return list(self._requests)

    def count(self, endpoint: str) -> int:
        """How many requests reached `endpoint` ("create", "get", ...)."""
        with self._requests_lock:
            return sum(1 for record in self._requests if record.endpoint == endpoint)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    @property
    def tasks(self) -> dict[str, SimTask]:
        """task_id -> the simulator's internal record (read-only use, for tests).

        The tasks this simulator created or has served; with `state_dir`, tasks of other
        simulators over the same folder appear once they were asked for.
        """
        return self._book.snapshot()

    def task_status(self, task_id: str) -> str:
        """The status a GET would report now (handy in tests)."""
        return self._get_task(task_id).state()["status"]

    def _get_task(self, task_id: str) -> SimTask:
        task = self._book.find(task_id)
        if task is None:
            raise UnknownTaskError(f"this simulator has no task {task_id!r}")
        return task

    def state_size_bytes(self) -> int:
        """Bytes the state_dir holds (database, input images, videos, uploads); 0 without one."""
        if self._state_dir is None or not self._state_dir.is_dir():
            return 0
        from ._state import SimState

        state = self._state or SimState(self._state_dir)
        try:
            return state.size_bytes()
        finally:
            if state is not self._state:
                state.close()

    def prune_state(self, older_than: float | timedelta = timedelta(days=7)) -> "PruneResult":
        """Delete stored tasks created more than `older_than` ago (seconds or a timedelta)
        whose clock has ended, with the input images and videos only they used, and
        uploads that old. Never called automatically; works on a stopped simulator too.

        A pruned task answers 404, as an expired task does on PiAPI: download the videos
        you want to keep first (the widget's run store keeps its own copies).
        """
        if self._state_dir is None:
            raise SimulatorError("this simulator keeps no state (no state_dir was given): there is nothing to prune")
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidInputError("older_than must be a duration >= 0 (seconds or a timedelta)")
        from ._state import SimState

        state = self._state or SimState(self._state_dir)
        try:
            now = time.time_ns()
            removed, result = state.prune(created_before_ns=now - int(seconds * 1e9), now_ns=now)
        finally:
            if state is not self._state:
                state.close()
        self._book.forget(removed)
        return result

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """The webhooks sent so far (tasks whose create carried `config.webhook_config`)."""
        return self._webhooks.deliveries

    # ---------------------------------------------------------------- request handling

    def _files_url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    def _record(self, method: str, path: str, endpoint: str | None) -> RequestRecord:
        record = RequestRecord(method, path, endpoint, time.time())
        with self._requests_lock:
            self._requests.append(record)
        return record

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("x-api-key") or ""
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    def _answer(
        self, endpoint: str | None, method: str, argument: str | None, body: bytes, headers: Mapping[str, str]
    ) -> Response:
        if endpoint is None:
            return json_response(200, {"code": 200, "message": "success", "data": {
                "name": "framepack simulator", "simulated": True, "model": MODEL}})
        if endpoint == "download":
            return self._download(argument or "", headers)
        if not self._authorized(headers):
            return error_response(401, "Unauthorized: invalid or missing x-api-key")
        if endpoint == "create":
            return self._create(body)
        if endpoint == "get":
            return self._get(argument or "")
        if endpoint == "cancel":
            return self._cancel(argument or "")
        if endpoint == "account":
            return self._account()
        if endpoint == "upload":
            return self._upload(body)
        return error_response(404, "no such endpoint")  # pragma: no cover

    # create -------------------------------------------------------------------

    def _create(self, body: bytes) -> Response:
        if self._replay is not None:
            assert self._renderer is not None
            return self._replay.create(body, self._local_file, self._renderer, long_side=self.long_side,
                                       label=self.label, files_url=self._files_url)
        request = parse_create(body, self._local_file)
        if isinstance(request, Response):
            return request
        from ._render import detect_motion, render_key

        start, end, duration = request.start, request.end, request.duration
        motion = detect_motion(request.prompt)
        assert self._renderer is not None and self._renders_dir is not None
        key = render_key(start.sha256, end.sha256 if end else None, motion, duration, self.long_side, self.label)
        processing = self._processing_seconds(duration)
        task = SimTask(
            task_id=str(uuid.uuid4()),
            input_echo=request.input_echo,
            config_echo=request.config_echo,
            duration=duration,
            motion=motion,
            has_end_image=end is not None,
            notes=[note for note in (start.note, end.note if end else None) if note],
            created_ns=time.time_ns(),
            created_mono_ns=time.monotonic_ns(),
            pending_seconds=self.pending_seconds,
            processing_seconds=processing,
            time_scale=self.time_scale,
            render=RenderJob(key, self._renders_dir / f"{key}.mp4"),  # submitted by the book
            render_key=key,
            start_sha256=start.sha256,
            end_sha256=end.sha256 if end else None,
            long_side=self.long_side,
            label=self.label,
            persisted=self._state is not None,
            profile=self.profile,
        )
        picked = self._faults.pick_task_faults()
        if "fail_task" in picked:
            failure = picked["fail_task"]
            after = processing / 3 if failure.delay is None else float(failure.delay)
            task.fail_after = min(max(0.0, after), processing)
            task.fail_message = failure.message or "task failed"
        if "url_lag" in picked:
            task.url_lag = int(picked["url_lag"].count or 0)
        if "status_words" in picked:
            task.status_words = dict(picked["status_words"].words or ())
        if "output_shape" in picked:
            task.output_shape = picked["output_shape"].shape
        self._book.add(task, start.data, end.data if end is not None else None)
        self._webhooks.watch(task)
        return self._envelope(task)

    def _processing_seconds(self, duration: int) -> float:
        """Simulated seconds a clip of `duration` seconds stays processing (at time_scale 1)."""
        value = self.processing_seconds
        if value is None:
            return default_processing_seconds(duration)
        seconds = float(value(duration)) if callable(value) else float(value)
        return max(0.0, seconds)

    def _local_file(self, url: str) -> Path | None:
        """A URL of this simulator's own /files/ as a local path (no network needed)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        own = {"127.0.0.1", "localhost", "::1", self.host, urlsplit(self.base_url).hostname}
        if (parts.hostname or "") not in own or port != self._port:
            return None
        endpoint, name, _ = route("GET", parts.path.rstrip("/"))
        return self._file_path(name or "") if endpoint == "download" else None

    # get / cancel -----------------------------------------------------------------

    def _get(self, task_id: str) -> Response:
        if self._replay is not None:
            return self._replay.answer(task_id, "get", self._files_url)
        task = self._book.find(task_id)
        if task is None:
            return error_response(404, "Record Not Found")
        return json_response(200, {"code": 200, "message": "success", "data": task.data(self.base_url, poll=True)})

    def _cancel(self, task_id: str) -> Response:
        if self._replay is not None:
            return self._replay.answer(task_id, "cancel", self._files_url)
        task = self._book.find(task_id)
        if task is None:
            return error_response(404, "Record Not Found")
        refused = self._book.cancel(task)
        if refused is not None:
            return error_response(400, f"task {task_id} is {refused}: only pending tasks can be cancelled")
        self._webhooks.changed(task)
        return self._envelope(task)

    def _envelope(self, task: SimTask) -> Response:
        return json_response(200, {"code": 200, "message": "success", "data": self.task_data(task)})

    def task_data(self, task: SimTask) -> dict[str, Any]:
        """The envelope's `data` for a task, as of now."""
        return task.data(self.base_url)

    # account / upload / files -----------------------------------------------------------

    def _account(self) -> Response:
        tasks = self._book.ledger()
        state = self._state
        if state is not None:  # another simulator over the folder may have set it
            self.credits_usd = float(state.get_meta("credits_usd") or self.credits_usd)
        spent = frozen = 0
        for task in tasks:
            usage = self.task_data(task)["meta"]["usage"]
            spent += usage["consume"]
            frozen += usage["frozen"]
        credits = max(0, round(self.credits_usd * UNITS_PER_USD) - spent)
        return json_response(200, {"code": 200, "message": "success", "data": {
            "account_name": "simulator",
            "account_id": "simulator",
            "credits": credits,
            "equivalent_in_usd": round(credits / UNITS_PER_USD, 6),
            "frozen_credits": frozen,
            "spent_in_usd": round(spent / UNITS_PER_USD, 6),
            "plan": "simulator",
            "simulated": True,
        }})

    def _upload(self, body: bytes) -> Response:
        upload = parse_upload(body)
        if isinstance(upload, Response):
            return upload
        base, data = upload
        name = f"{uuid.uuid4().hex[:16]}-{base}"
        assert self._uploads_dir is not None
        target = self._uploads_dir / name
        write_private(target, data)
        return json_response(200, {"code": 200, "message": "success", "data": {
            "url": f"{self.base_url}/files/{name}"}})

    def _file_path(self, name: str) -> Path | None:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        if self._replay is not None and self._replay.is_video(name):
            return self._replay.video(name)
        if name.endswith(".mp4"):
            task = self._book.find(name[:-4])
            if task is not None:
                path = task.render.path
                return path if task.state()["status"] == "completed" and path.is_file() else None
        assert self._uploads_dir is not None
        path = self._uploads_dir / name
        return path if path.is_file() else None

    def _download(self, name: str, headers: Mapping[str, str]) -> Response:
        expired = self._replay.download_status() if self._replay is not None and self._replay.is_video(name) else None
        if expired is not None:
            return error_response(expired, "the recorded download failed (the link had expired)")
        path = self._file_path(name)
        if path is None:
            return error_response(404, "file not found (it may not be ready yet)")
        return file_response(path, headers)
