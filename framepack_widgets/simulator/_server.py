"""The offline PiAPI simulator: a real HTTP server on loopback that speaks PiAPI's envelope.

Why a real server: the project's clients, the widget, the CLI and the benchmarks all talk
HTTP, so the simulator exercises exactly the code that talks to PiAPI (retries, dropped
connections, Retry-After, slow answers) without a key or a network.

Design:
- `http.server.ThreadingHTTPServer` with HTTP/1.1 keep-alive, one thread per connection
  (100+ polling clients are fine), TCP_NODELAY and one write per small answer.
- Task state is derived from the clock on each request (no timers, no busy loops):
  pending for `pending_seconds`, processing for `processing_seconds`, then completed,
  all divided by `time_scale`.
- The MP4 is rendered by a small worker pool as soon as the task is created, keyed by
  content, so identical requests render once; if the clock says "completed" before the
  render is done, the task simply stays "processing" (percent 99) until it is.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import mimetypes
import re
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..constants import COST_PER_SECOND, FPS, IMAGE_EXT_MIME, MAX_DURATION, MIN_DURATION, MODEL, TASK_TYPE
from ._faults import Fault, FaultBook

if TYPE_CHECKING:  # pragma: no cover
    from ._state import PruneResult, SimState, TaskRow

__all__ = [
    "DEFAULT_PENDING_SECONDS",
    "DEFAULT_PROCESSING_OVERHEAD",
    "DEFAULT_PROCESSING_PER_VIDEO_SECOND",
    "RequestRecord",
    "Simulator",
    "default_processing_seconds",
]

logger = logging.getLogger("framepack_widgets.simulator")

UNITS_PER_USD = 10_000_000
ZERO_TIME = "0001-01-01T00:00:00Z"
UPLOAD_LIMIT = 10 * 1024 * 1024
BODY_LIMIT = 64 * 1024 * 1024

# The default clock, in simulated seconds (divide by time_scale for wall seconds):
# a 10 s video takes 3 + 4 + 30 = 37 s in all, a 30 s video 97 s.
DEFAULT_PENDING_SECONDS = 3.0
DEFAULT_PROCESSING_OVERHEAD = 4.0
DEFAULT_PROCESSING_PER_VIDEO_SECOND = 3.0


def default_processing_seconds(duration: int) -> float:
    """Processing time of a clip of `duration` seconds at time_scale 1."""
    return DEFAULT_PROCESSING_OVERHEAD + DEFAULT_PROCESSING_PER_VIDEO_SECOND * duration


def _rfc3339(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds and `Z`, as PiAPI writes `created_at`."""
    seconds, fraction = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


@dataclass
class RequestRecord:
    """One request as the simulator saw it (never its headers: they carry the key)."""

    method: str
    path: str
    endpoint: str | None  # "create", "get", "cancel", "account", "upload", "download", or None
    time: float  # time.time() on arrival
    status: int | None = None  # the status answered; None while running or when dropped
    fault: str | None = None  # the kind of fault applied, if any


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    file_range: tuple[int, int] | None = None  # (start, length) within `file`


def _json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return _Response(status, body, out)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Response:
    return _json_response(status, _error_body(status, message), headers)


# ----------------------------------------------------------------------------- renders


@dataclass
class _RenderJob:
    key: str
    path: Path
    done_ns: int | None = None
    error: str | None = None
    seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.done_ns is not None and self.error is None


ImageBytes = bytes | Callable[[], bytes]  # the bytes, or a loader run in the render thread


class _Renderer:
    """A bounded pool rendering each distinct clip once (per process; the file is shared)."""

    def __init__(self, folder: Path, *, workers: int, long_side: int, label: bool, stopping: threading.Event,
                 on_done: Callable[[_RenderJob], None] | None = None, shared: bool = False):
        self.folder = folder
        self.shared = shared  # other processes render into this folder too: take a lock per clip
        self.long_side = long_side
        self.label = label
        self._stopping = stopping
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="framepack-sim-render")
        self._jobs: dict[str, _RenderJob] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, start: ImageBytes, end: ImageBytes | None, motion: str, duration: int, *,
               long_side: int | None = None, label: bool | None = None) -> _RenderJob:
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.error is None and (job.done_ns is None or job.path.exists()):
                return job
            job = _RenderJob(key, self.folder / f"{key}.mp4")
            self._jobs[key] = job
            try:  # already rendered (a kept workdir, or another simulator over the same state_dir)
                job.done_ns, job.seconds = job.path.stat().st_mtime_ns, 0.0
                return job
            except FileNotFoundError:
                pass
        self._pool.submit(self._run, job, start, end, motion, duration,
                          self.long_side if long_side is None else long_side,
                          self.label if label is None else label)
        return job

    def _run(self, job: _RenderJob, start: ImageBytes, end: ImageBytes | None, motion: str, duration: int,
             long_side: int, label: bool) -> None:
        from ._render import render_video

        lock = None
        try:
            if self.shared:
                lock = self._file_lock(job)
                try:  # another simulator over the same folder made it while we waited
                    job.done_ns, job.seconds = job.path.stat().st_mtime_ns, 0.0
                    return
                except FileNotFoundError:
                    pass
            start_bytes = start() if callable(start) else start
            end_bytes = end() if callable(end) else end
            result = render_video(
                job.path, start_bytes, end_bytes, motion=motion, duration=duration, long_side=long_side,
                label=label, should_stop=self._stopping.is_set,
            )
            job.seconds = result.seconds
            logger.debug("rendered %s (%s s, %s) in %.2f s", job.key, duration, motion, result.seconds)
        except BaseException as exc:  # noqa: BLE001 - reported on the task, never lost
            job.error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            if not self._stopping.is_set():
                logger.exception("the simulator could not render %s", job.key)
        finally:
            if lock is not None:
                lock.close()  # releases the flock
            if job.done_ns is None:
                job.done_ns = time.time_ns()
            if self._on_done is not None:
                try:
                    self._on_done(job)
                except Exception:  # noqa: BLE001 - bookkeeping must not kill the worker
                    logger.exception("the simulator could not record the render of %s", job.key)

    def _file_lock(self, job: _RenderJob) -> Any:
        """Hold `<key>.lock` while rendering, so simulators sharing a state_dir render a clip once.

        An flock dies with its process, so a killed kernel never leaves a clip locked.
        Returns the open lock file (close it to release), or None where flock is unavailable.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: at worst a clip is rendered twice
            return None
        handle = open(job.path.with_suffix(".lock"), "a+b")  # noqa: SIM115 - closed by the caller
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    if self._stopping.wait(0.05):
                        from ._render import RenderCancelled

                        raise RenderCancelled("the simulator stopped") from None
        except BaseException:
            handle.close()
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- tasks


@dataclass
class _Image:
    data: bytes
    sha256: str
    echo: str
    note: str | None = None


@dataclass
class SimTask:
    """The simulator's record of one task; its status is computed from the clock."""

    task_id: str
    input_echo: dict[str, Any]
    config_echo: dict[str, Any]
    duration: int
    motion: str
    has_end_image: bool
    notes: list[str]
    created_ns: int
    created_mono_ns: int
    pending_seconds: float
    processing_seconds: float
    time_scale: float
    render: _RenderJob
    fail_after: float | None = None  # simulated seconds into processing
    fail_message: str | None = None
    cancelled_ns: int | None = None
    # What a re-render needs (a simulator over the same state_dir, after this process died).
    render_key: str = ""
    start_sha256: str | None = None
    end_sha256: str | None = None
    long_side: int = 640
    label: bool = True
    persisted: bool = False  # stored in a state_dir (then other processes may cancel it)

    def _wall_at(self, simulated: float) -> int:
        return self.created_ns + int(simulated / self.time_scale * 1e9)

    @property
    def clock_ends_ns(self) -> int:
        """Wall ns when the clock says completed (or failed, with a fault-driven failure)."""
        end = self.fail_after if self.fail_after is not None else self.processing_seconds
        return self._wall_at(self.pending_seconds + end)

    def state(self, mono_ns: int | None = None) -> dict[str, Any]:
        """status, fraction done, started/ended (wall ns or None), logs, error."""
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        elapsed = (now - self.created_mono_ns) / 1e9 * self.time_scale
        p, r = self.pending_seconds, self.processing_seconds
        if self.cancelled_ns is not None:
            return {"status": "cancelled", "fraction": None, "started": None, "ended": self.cancelled_ns,
                    "logs": [], "error": None}
        if elapsed < p:
            return {"status": "pending", "fraction": None, "started": None, "ended": None, "logs": [], "error": None}
        started = self._wall_at(p)
        if self.fail_after is not None and elapsed >= p + self.fail_after:
            fraction = self.fail_after / r if r > 0 else 1.0
            logs = self._logs(fraction) + [f"error: {self.fail_message}"]
            return {"status": "failed", "fraction": fraction, "started": started,
                    "ended": self._wall_at(p + self.fail_after), "logs": logs,
                    "error": (10000, self.fail_message or "task failed")}
        if elapsed < p + r:
            fraction = (elapsed - p) / r if r > 0 else 1.0
            return {"status": "processing", "fraction": fraction, "started": started, "ended": None,
                    "logs": self._logs(fraction), "error": None}
        job = self.render
        if job.done_ns is None:
            logs = self._logs(1.0) + ["encoding video (the simulator's renderer is still busy)"]
            return {"status": "processing", "fraction": 0.99, "started": started, "ended": None,
                    "logs": logs, "error": None}
        ended = max(self._wall_at(p + r), job.done_ns)
        if job.error is not None:
            message = f"the simulator could not render the video: {job.error}"
            return {"status": "failed", "fraction": 1.0, "started": started, "ended": ended,
                    "logs": self._logs(1.0) + [f"error: {message}"], "error": (10001, message)}
        return {"status": "completed", "fraction": 1.0, "started": started, "ended": ended, "logs": [],
                "error": None}

    def _logs(self, fraction: float) -> list[str]:
        """The log lines FramePack would have printed by this point of processing."""
        sections = max(1, round(self.duration * FPS / 36))  # FramePack samples 36 frames a section
        schedule: list[tuple[float, str]] = [
            (0.0, "worker picked up the task (simulated GPU: the video will be synthetic)"),
            (0.01, f"loading model {MODEL}"),
            (0.03, "encoding prompt"),
            (0.05, "encoding start image"),
        ]
        if self.has_end_image:
            schedule.append((0.06, "encoding end image"))
        schedule.extend((0.06, note) for note in self.notes)
        schedule.append((0.08, f"camera motion from prompt: {self.motion.replace('_', ' ')}"))
        for i in range(1, sections + 1):
            schedule.append((0.1 + 0.85 * (i - 1) / sections, f"sampling section {i}/{sections}"))
        schedule.append((0.96, "decoding latents to frames"))
        return [text for at, text in schedule if fraction >= at]


# ----------------------------------------------------------------------------- HTTP


_TASK_PATH = re.compile(r"^/api/v1/task/([^/]+)$")
_FILE_PATH = re.compile(r"^/files/([^/]+)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _route(method: str, path: str) -> tuple[str | None, str | None, bool]:
    """(endpoint name, path argument, method allowed) for a request."""
    if path == "/api/v1/task":
        return "create", None, method == "POST"
    match = _TASK_PATH.match(path)
    if match:
        if method == "DELETE":
            return "cancel", unquote(match.group(1)), True
        return "get", unquote(match.group(1)), method == "GET"
    if path == "/account/info":
        return "account", None, method == "GET"
    if path == "/api/ephemeral_resource":
        return "upload", None, method == "POST"
    match = _FILE_PATH.match(path)
    if match:
        return "download", unquote(match.group(1)), method in ("GET", "HEAD")
    if path == "":
        return None, None, method in ("GET", "HEAD")
    return None, None, False


class _Dropped(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FramepackSimulator/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    server: "_HTTPServer"

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        sim = self.server.simulator
        path = urlsplit(self.path).path.rstrip("/")
        endpoint, argument, allowed = _route(self.command, path)
        record = sim._record(self.command, path or "/", endpoint)
        fault = sim._faults.pick(endpoint) if endpoint is not None else None
        if fault is not None:
            record.fault = fault.kind
        try:
            if fault is not None and fault.kind == "drop_before_body":
                raise _Dropped
            body = self._read_body()
            if isinstance(body, _Response):
                response = body
            elif fault is not None and fault.kind == "status":
                response = self._fault_response(fault)
            else:
                if fault is not None and fault.kind == "slow":
                    if sim._stopping.wait(float(fault.delay or 0.0)):
                        raise _Dropped
                if not allowed:
                    if endpoint is None and path != "":
                        response = _error(404, f"no such endpoint: {self.command} {path or '/'}")
                    else:
                        response = _error(405, f"method {self.command} is not allowed on {path or '/'}")
                else:
                    try:
                        response = sim._handle(endpoint, self.command, argument, body, self.headers)
                    except Exception as exc:  # noqa: BLE001 - a bug here must still answer
                        logger.exception("the simulator failed on %s %s", self.command, path)
                        response = _error(500, f"simulator internal error: {exc.__class__.__name__}: {exc}")
                if fault is not None and fault.kind == "drop_after_body":
                    raise _Dropped
                if fault is not None and fault.kind == "malformed":
                    response = _malformed(response)
        except _Dropped:
            self._drop()
            return
        record.status = response.status
        self._send(response)

    def _read_body(self) -> bytes | _Response:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    return _error(400, "invalid chunked request body")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > BODY_LIMIT:
                    self.close_connection = True
                    return _error(413, f"request body too large: {BODY_LIMIT // (1024 * 1024)} MB maximum")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            return _error(400, "invalid Content-Length header")
        if length > BODY_LIMIT:
            self.close_connection = True
            return _error(413, f"request body too large: {BODY_LIMIT // (1024 * 1024)} MB maximum")
        return self.rfile.read(length) if length > 0 else b""

    def _fault_response(self, fault: Fault) -> _Response:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            value = fault.retry_after
            if isinstance(value, datetime):
                aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
                headers["Retry-After"] = format_datetime(aware.astimezone(timezone.utc), usegmt=True)
            elif isinstance(value, str):
                headers["Retry-After"] = value
            elif fault.http_date:
                when = datetime.now(timezone.utc) + timedelta(seconds=float(value))
                headers["Retry-After"] = format_datetime(when, usegmt=True)
            else:
                number = float(value)
                headers["Retry-After"] = str(int(number)) if number.is_integer() else repr(number)
        status = int(fault.status or 500)
        return _error(status, fault.error_message(), headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, response: _Response) -> None:
        head_only = self.command == "HEAD"
        if response.file is not None:
            start, length = response.file_range or (0, response.file.stat().st_size)
        else:
            start, length = 0, len(response.body)
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = {
            "Server": self.server_version,
            "Date": self.date_time_string(),
            **response.headers,
            "Content-Length": str(length),
        }
        if self.close_connection or response.status == 413:
            headers["Connection"] = "close"
            self.close_connection = True
        elif self.headers.get("Connection", "").lower() == "keep-alive":
            headers["Connection"] = "keep-alive"
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if head_only:
                self.wfile.write(head)
            elif response.file is None:
                self.wfile.write(head + response.body)  # one write: no Nagle/delayed-ACK stall
            else:
                self.wfile.write(head)
                with response.file.open("rb") as handle:
                    handle.seek(start)
                    remaining = length
                    while remaining > 0:
                        chunk = handle.read(min(remaining, 256 * 1024))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _malformed(response: _Response) -> _Response:
    """The same answer cut in half: a 200 whose JSON does not parse."""
    if response.file is not None:
        start, length = response.file_range or (0, response.file.stat().st_size)
        with response.file.open("rb") as handle:
            handle.seek(start)
            body = handle.read(max(1, length // 2))
        return _Response(200, body, dict(response.headers))
    body = response.body or b'{"code":200,"message":"success","data":{}}'
    headers = dict(response.headers)
    headers["Content-Type"] = "application/json; charset=utf-8"
    return _Response(200, body[: max(1, len(body) // 2)], headers)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: "Simulator", family: int) -> None:
        self.address_family = family
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, OSError)):
            return
        logger.exception("the simulator failed on a request from %s", client_address)


# ----------------------------------------------------------------------------- Simulator


class Simulator:
    """A PiAPI-compatible server on loopback that makes synthetic FramePack videos.

    `Simulator(time_scale=20).start()` or `with Simulator() as sim: ...`; point a client
    at `sim.base_url` with `sim.api_key`. The clock (simulated seconds, divided by
    `time_scale`): pending `pending_seconds` (default 3), then processing
    `processing_seconds` (default 4 + 3 per second of video; a float or a callable
    taking the duration), then completed once the MP4 is rendered.

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
        long_side: int = 640,
        label: bool = True,
        credits_usd: float | None = None,
        state_dir: str | Path | None = None,
    ) -> None:
        if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
            raise ValueError("time_scale must be a positive number (10 runs the clock ten times faster)")
        if pending_seconds is not None and pending_seconds < 0:
            raise ValueError("pending_seconds must be >= 0")
        if processing_seconds is not None and not callable(processing_seconds) and processing_seconds < 0:
            raise ValueError("processing_seconds must be >= 0 or a callable(duration) -> seconds")
        self.host = host
        self._requested_port = int(port)
        self.time_scale = float(time_scale)
        self.pending_seconds = DEFAULT_PENDING_SECONDS if pending_seconds is None else float(pending_seconds)
        self.processing_seconds = processing_seconds
        self.api_key = api_key or "sim-" + secrets.token_urlsafe(18)
        self.long_side = int(long_side)
        self.label = bool(label)
        if state_dir is not None and workdir is not None and (
            Path(workdir).expanduser().resolve() != Path(state_dir).expanduser().resolve()
        ):
            raise ValueError("give state_dir or workdir, not both: with state_dir, uploads and videos live there")
        # Starting balance (default $100). With state_dir the balance is shared by every
        # simulator over that folder: a value given here is stored there, else the stored one is used.
        self.credits_usd = 100.0 if credits_usd is None else float(credits_usd)
        self._credits_given = credits_usd is not None
        self._render_workers = int(render_workers)
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = None
        self._state_dir = Path(state_dir).expanduser() if state_dir is not None else None
        self._state: SimState | None = None
        self._load_lock = threading.Lock()
        self._uploads_dir: Path | None = None
        self._renders_dir: Path | None = None
        self._faults = FaultBook()
        for fault in faults or ():
            self._faults.add(fault)
        self._tasks: dict[str, SimTask] = {}
        self._tasks_lock = threading.Lock()
        self._requests: deque[RequestRecord] = deque(maxlen=100_000)
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._renderer: _Renderer | None = None
        self._port: int | None = None
        self._stopped = False
        self._finalizer: weakref.finalize | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "Simulator":
        """Bind, start serving in a background thread, and return self."""
        if self._server is not None:
            return self
        if self._stopped:
            raise RuntimeError("this simulator was stopped; create a new Simulator to serve again")
        if self._state_dir is not None:
            self._state = self._open_state()
            self._workdir = self._state.folder
            self._uploads_dir, self._renders_dir = self._state.uploads_dir, self._state.files_dir
        else:
            if self._workdir_arg is not None:
                self._workdir = self._workdir_arg
                self._workdir.mkdir(parents=True, exist_ok=True)
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix="framepack-sim-"))
                # Also removed at interpreter exit when stop() is never called.
                self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._workdir), True)
            self._uploads_dir, self._renders_dir = self._workdir / "uploads", self._workdir / "renders"
            self._uploads_dir.mkdir(exist_ok=True)
            self._renders_dir.mkdir(exist_ok=True)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            server = _HTTPServer((self.host, self._requested_port), self, family)
        except OSError:
            self._close_state()
            self._cleanup_workdir()
            raise
        self._server = server
        self._port = server.server_address[1]
        self._renderer = _Renderer(
            self._renders_dir, workers=self._render_workers, long_side=self.long_side,
            label=self.label, stopping=self._stopping, on_done=self._render_done,
            shared=self._state is not None,
        )
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
        self._close_state()
        self._cleanup_workdir()

    def _open_state(self) -> "SimState":
        import sqlite3

        from ._state import SimState

        assert self._state_dir is not None
        try:
            state = SimState(self._state_dir)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeError(
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
            raise RuntimeError("the simulator picks its port when started: call start() first")
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
        with self._tasks_lock:
            return dict(self._tasks)

    def task_status(self, task_id: str) -> str:
        """The status a GET would report now (handy in tests)."""
        return self._get_task(task_id).state()["status"]

    def _get_task(self, task_id: str) -> SimTask:
        task = self._find(task_id)
        if task is None:
            raise KeyError(task_id)
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
            raise RuntimeError("this simulator keeps no state (no state_dir was given): there is nothing to prune")
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("older_than must be a duration >= 0 (seconds or a timedelta)")
        from ._state import SimState

        state = self._state or SimState(self._state_dir)
        try:
            now = time.time_ns()
            removed, result = state.prune(created_before_ns=now - int(seconds * 1e9), now_ns=now)
        finally:
            if state is not self._state:
                state.close()
        with self._tasks_lock:
            for task_id in removed:
                self._tasks.pop(task_id, None)
        return result

    # ---------------------------------------------------------------- request handling

    def _record(self, method: str, path: str, endpoint: str | None) -> RequestRecord:
        record = RequestRecord(method, path, endpoint, time.time())
        with self._requests_lock:
            self._requests.append(record)
        return record

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        given = headers.get("x-api-key") or ""
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    def _handle(
        self, endpoint: str | None, method: str, argument: str | None, body: bytes, headers: Mapping[str, str]
    ) -> _Response:
        if endpoint is None:
            return _json_response(200, {"code": 200, "message": "success", "data": {
                "name": "framepack simulator", "simulated": True, "model": MODEL}})
        if endpoint == "download":
            return self._download(argument or "", headers)
        if not self._authorized(headers):
            return _error(401, "Unauthorized: invalid or missing x-api-key")
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
        return _error(404, "no such endpoint")  # pragma: no cover

    # create -------------------------------------------------------------------

    def _create(self, body: bytes) -> _Response:
        try:
            request = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"invalid request body: not valid JSON ({exc.__class__.__name__})")
        if not isinstance(request, dict):
            return _error(400, "invalid request body: expected a JSON object with model, task_type and input")
        model = request.get("model")
        if model != MODEL:
            return _error(400, f"invalid model {model!r}: this endpoint serves {MODEL!r}")
        task_type = request.get("task_type")
        if task_type != TASK_TYPE:
            return _error(400, f"invalid task_type {task_type!r} for {MODEL}: use {TASK_TYPE!r}")
        given = request.get("input")
        if not isinstance(given, dict):
            return _error(400, "invalid request: input is required and must be an object")
        prompt = given.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _error(400, "invalid request: input.prompt is required")
        negative = given.get("negative_prompt", "")
        if negative is not None and not isinstance(negative, str):
            return _error(400, "invalid request: input.negative_prompt must be a string")
        duration = given.get("duration", MIN_DURATION)
        if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_DURATION <= duration <= MAX_DURATION:
            return _error(400, f"invalid request: input.duration must be a whole number of seconds from "
                               f"{MIN_DURATION} to {MAX_DURATION}, got {duration!r}")
        if given.get("start_image") in (None, ""):
            return _error(400, "invalid request: input.start_image is required")
        start = self._resolve_image(given["start_image"], "start_image")
        if isinstance(start, _Response):
            return start
        end: _Image | None = None
        if given.get("end_image") not in (None, ""):
            resolved = self._resolve_image(given["end_image"], "end_image")
            if isinstance(resolved, _Response):
                return resolved
            end = resolved

        from ._render import detect_motion, render_key

        motion = detect_motion(prompt)
        input_echo = dict(given)
        input_echo["start_image"] = start.echo
        if end is not None:
            input_echo["end_image"] = end.echo
        config = request.get("config") if isinstance(request.get("config"), dict) else {}
        webhook = config.get("webhook_config") if isinstance(config.get("webhook_config"), dict) else {}
        config_echo = {
            "service_mode": str(config.get("service_mode") or ""),
            "webhook_config": {"endpoint": str(webhook.get("endpoint") or ""), "secret": ""},
        }
        assert self._renderer is not None and self._renders_dir is not None
        key = render_key(start.sha256, end.sha256 if end else None, motion, duration, self.long_side, self.label)
        processing = self._processing_seconds(duration)
        task = SimTask(
            task_id=str(uuid.uuid4()),
            input_echo=input_echo,
            config_echo=config_echo,
            duration=duration,
            motion=motion,
            has_end_image=end is not None,
            notes=[note for note in (start.note, end.note if end else None) if note],
            created_ns=time.time_ns(),
            created_mono_ns=time.monotonic_ns(),
            pending_seconds=self.pending_seconds,
            processing_seconds=processing,
            time_scale=self.time_scale,
            render=_RenderJob(key, self._renders_dir / f"{key}.mp4"),  # submitted below
            render_key=key,
            start_sha256=start.sha256,
            end_sha256=end.sha256 if end else None,
            long_side=self.long_side,
            label=self.label,
            persisted=self._state is not None,
        )
        failure = self._faults.pick_task_failure()
        if failure is not None:
            after = processing / 3 if failure.delay is None else float(failure.delay)
            task.fail_after = min(max(0.0, after), processing)
            task.fail_message = failure.message or "task failed"
        state = self._state
        if state is not None:  # stored before anyone learns its id, so any simulator can serve it
            images = [(start.sha256, start.data)] + ([(end.sha256, end.data)] if end is not None else [])
            state.add_task(self._row(task), images)
        with self._tasks_lock:
            self._tasks[task.task_id] = task
        self._attach_render(task, start.data, end.data if end is not None else None)
        return self._envelope(task)

    def _attach_render(self, task: SimTask, start: "bytes | Callable[[], bytes]",
                       end: "bytes | Callable[[], bytes] | None") -> None:
        """Submit (or share) the task's render; called once the task is registered."""
        assert self._renderer is not None
        job = self._renderer.submit(task.render_key, start, end, task.motion, task.duration,
                                    long_side=task.long_side, label=task.label)
        task.render = job
        if job.done_ns is not None and job.error is not None:
            self._render_done(job)  # it failed before the task held it: record it now (idempotent)

    def _render_done(self, job: _RenderJob) -> None:
        """A render ended: with a state_dir, store a failure on its tasks so every simulator agrees."""
        state = self._state
        if state is None or job.error is None or self._stopping.is_set():
            return  # success is the file itself; a render stopped with the simulator is redone later
        with self._tasks_lock:
            ids = [task.task_id for task in self._tasks.values() if task.render is job and task.persisted]
        state.set_render_error(ids, job.error, job.done_ns or time.time_ns())

    # persistence ----------------------------------------------------------------

    def _row(self, task: SimTask) -> "TaskRow":
        from ._state import TaskRow

        record = {
            "v": 1,
            "input": task.input_echo,
            "config": task.config_echo,
            "duration": task.duration,
            "motion": task.motion,
            "has_end_image": task.has_end_image,
            "notes": list(task.notes),
            "pending_seconds": task.pending_seconds,
            "processing_seconds": task.processing_seconds,
            "time_scale": task.time_scale,
            "fail_after": task.fail_after,
            "fail_message": task.fail_message,
            "long_side": task.long_side,
            "label": task.label,
        }
        return TaskRow(task.task_id, task.created_ns, task.clock_ends_ns, task.render_key, task.start_sha256,
                       task.end_sha256, task.cancelled_ns, None, None, record)

    def _task_from_row(self, row: "TaskRow") -> SimTask:
        """A stored task, its clock mapped onto this process's monotonic clock (wall time goes on)."""
        assert self._renders_dir is not None
        rec = row.record
        now_wall, now_mono = time.time_ns(), time.monotonic_ns()
        path = self._renders_dir / f"{row.render_key}.mp4"
        task = SimTask(
            task_id=row.task_id,
            input_echo=dict(rec["input"]),
            config_echo=dict(rec["config"]),
            duration=int(rec["duration"]),
            motion=str(rec["motion"]),
            has_end_image=bool(rec["has_end_image"]),
            notes=list(rec.get("notes") or []),
            created_ns=row.created_ns,
            created_mono_ns=now_mono - (now_wall - row.created_ns),
            pending_seconds=float(rec["pending_seconds"]),
            processing_seconds=float(rec["processing_seconds"]),
            time_scale=float(rec["time_scale"]),
            render=_RenderJob(row.render_key, path),
            fail_after=None if rec.get("fail_after") is None else float(rec["fail_after"]),
            fail_message=rec.get("fail_message"),
            cancelled_ns=row.cancelled_ns,
            render_key=row.render_key,
            start_sha256=row.start_sha,
            end_sha256=row.end_sha,
            long_side=int(rec["long_side"]),
            label=bool(rec["label"]),
            persisted=True,
        )
        if row.render_error is not None:
            task.render = _RenderJob(row.render_key, path, done_ns=row.render_error_ns or row.created_ns,
                                     error=row.render_error)
        return task

    def _needs_video(self, task: SimTask) -> bool:
        return task.cancelled_ns is None and task.fail_after is None and task.render.error is None

    def _stored_image(self, sha256: str, name: str) -> bytes:
        """Input bytes for a re-render (runs in the render thread)."""
        state = self._state
        if state is None:
            raise RuntimeError("the simulator stopped")
        try:
            return state.load_image(sha256)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"the task's {name} image is no longer in the simulator's state folder {state.folder} "
                "(pruned or deleted), so its video cannot be made again: create the task again"
            ) from None

    def _load(self, task_id: str) -> SimTask | None:
        """A task another simulator over the same state_dir created (or this one, before a restart)."""
        state = self._state
        if state is None:
            return None
        with self._load_lock:  # one load per id, even when many clients poll it at once
            with self._tasks_lock:
                known = self._tasks.get(task_id)
            if known is not None:
                return known
            row = state.get_task(task_id)
            if row is None:
                return None
            task = self._task_from_row(row)
            with self._tasks_lock:
                self._tasks[task_id] = task
            if self._needs_video(task):
                start = partial(self._stored_image, row.start_sha, "start")
                end = partial(self._stored_image, row.end_sha, "end") if row.end_sha else None
                self._attach_render(task, start, end)  # the file if it exists, else rendered again
            logger.debug("loaded task %s from %s", task_id, state.folder)
            return task

    def _find(self, task_id: str) -> SimTask | None:
        """The task by id: known here, else loaded from the state_dir; None when it does not exist."""
        with self._tasks_lock:
            task = self._tasks.get(task_id)
        if task is None:
            return self._load(task_id)
        if task.persisted:
            self._refresh(task)
        return task

    def _refresh(self, task: SimTask, *, cancel: bool = True) -> None:
        """Take in what another simulator over the same state_dir did: a cancel, a finished video."""
        state = self._state
        if state is None:
            return
        if cancel and task.cancelled_ns is None and task.state()["status"] == "pending":
            cancelled = state.cancelled_ns(task.task_id)
            if cancelled is not None:
                with self._tasks_lock:
                    task.cancelled_ns = task.cancelled_ns or cancelled
        job = task.render
        if job.done_ns is None and job.error is None:
            try:  # rendered by another process while our worker waits for its lock
                job.done_ns = job.path.stat().st_mtime_ns
            except FileNotFoundError:
                pass

    def _ledger_tasks(self) -> list[SimTask]:
        """Every task the account is charged for: with a state_dir, all stored ones."""
        state = self._state
        if state is None:
            with self._tasks_lock:
                return list(self._tasks.values())
        out: list[SimTask] = []
        for row in state.all_tasks():
            with self._tasks_lock:
                task = self._tasks.get(row.task_id)
                if task is not None and task.cancelled_ns is None and row.cancelled_ns is not None:
                    task.cancelled_ns = row.cancelled_ns
            if task is not None:
                self._refresh(task, cancel=False)  # the row's cancel was applied just above
            else:  # a view only: not registered, no render started
                task = self._task_from_row(row)
                if task.render.error is None:
                    try:
                        task.render.done_ns = task.render.path.stat().st_mtime_ns
                    except FileNotFoundError:
                        pass
            out.append(task)
        return out

    def _processing_seconds(self, duration: int) -> float:
        value = self.processing_seconds
        if value is None:
            return default_processing_seconds(duration)
        seconds = float(value(duration)) if callable(value) else float(value)
        return max(0.0, seconds)

    def _resolve_image(self, value: object, name: str) -> _Image | _Response:
        import hashlib

        from ._render import placeholder_png, probe_image

        if not isinstance(value, str):
            return _error(400, f"invalid request: input.{name} must be a URL or a base64-encoded image")
        text = value.strip()
        if text.lower().startswith(("http://", "https://")):
            local = self._local_file(text)
            if local is not None:
                data = local.read_bytes()
                try:
                    probe_image(data)
                    return _Image(data, hashlib.sha256(data).hexdigest(), text)
                except ValueError:
                    note = f"{name} at {text} is not an image: using a generated placeholder picture"
            else:
                note = (f"could not fetch {name} from {text}: the simulator has no internet access, "
                        "so it uses a generated placeholder picture")
            data = placeholder_png(text)
            return _Image(data, hashlib.sha256(data).hexdigest(), text, note)
        payload = text
        if payload.lower().startswith("data:"):
            header, comma, payload = payload.partition(",")
            if not comma or ";base64" not in header.lower():
                return _error(400, f"invalid request: input.{name} is a data URI without base64 data")
        payload = "".join(payload.split())
        payload += "=" * (-len(payload) % 4)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            try:
                data = base64.urlsafe_b64decode(payload)
            except (binascii.Error, ValueError):
                return _error(400, f"invalid request: input.{name} is neither an http(s) URL nor valid base64")
        if not data:
            return _error(400, f"invalid request: input.{name} is empty")
        try:
            probe_image(data)
        except ValueError as exc:
            return _error(400, f"invalid request: input.{name} could not be decoded as an image: {exc}")
        return _Image(data, hashlib.sha256(data).hexdigest(), f"<base64 image, {len(data)} bytes>")

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
        match = _FILE_PATH.match(parts.path.rstrip("/"))
        return self._file_path(unquote(match.group(1))) if match else None

    # get / cancel -----------------------------------------------------------------

    def _get(self, task_id: str) -> _Response:
        task = self._find(task_id)
        if task is None:
            return _error(404, "Record Not Found")
        return self._envelope(task)

    def _cancel(self, task_id: str) -> _Response:
        task = self._find(task_id)
        if task is None:
            return _error(404, "Record Not Found")
        state = self._state if task.persisted else None
        with self._tasks_lock:
            status = task.state()["status"]
            if status != "pending":
                return _error(400, f"task {task_id} is {status}: only pending tasks can be cancelled")
            now = time.time_ns()
            if state is None:
                task.cancelled_ns = now
        if state is not None:  # the first cancel stored wins, whichever simulator took it
            stored = state.cancel(task_id, now)
            with self._tasks_lock:
                task.cancelled_ns = task.cancelled_ns or stored or now
        return self._envelope(task)

    def _envelope(self, task: SimTask) -> _Response:
        return _json_response(200, {"code": 200, "message": "success", "data": self.task_data(task)})

    def task_data(self, task: SimTask) -> dict[str, Any]:
        """The envelope's `data` for a task, as of now."""
        state = task.state()
        status = state["status"]
        units = round(COST_PER_SECOND * task.duration * UNITS_PER_USD)
        output: dict[str, Any] = {"video_url": ""}
        if status == "processing":
            output["percent"] = max(0, min(99, int(state["fraction"] * 100)))
        elif status == "completed":
            output["video_url"] = f"{self.base_url}/files/{task.task_id}.mp4"
        if status in ("pending", "processing"):
            usage = {"type": "point", "frozen": units, "consume": 0}
        elif status == "completed":
            usage = {"type": "point", "frozen": 0, "consume": units}
        else:
            usage = {"type": "point", "frozen": 0, "consume": 0}
        error = {"code": 0, "raw_message": "", "message": "", "detail": None}
        if state["error"] is not None:
            code, message = state["error"]
            error = {"code": code, "raw_message": message, "message": message, "detail": None}
        return {
            "task_id": task.task_id,
            "model": MODEL,
            "task_type": TASK_TYPE,
            "status": status,
            "config": json.loads(json.dumps(task.config_echo)),
            "input": dict(task.input_echo),
            "output": output,
            "meta": {
                "created_at": _rfc3339(task.created_ns),
                "started_at": _rfc3339(state["started"]) if state["started"] else ZERO_TIME,
                "ended_at": _rfc3339(state["ended"]) if state["ended"] else ZERO_TIME,
                "usage": usage,
                "is_using_private_pool": False,
            },
            "detail": None,
            "logs": list(state["logs"]),
            "error": error,
        }

    # account / upload / files -----------------------------------------------------------

    def _account(self) -> _Response:
        tasks = self._ledger_tasks()
        state = self._state
        if state is not None:  # another simulator over the folder may have set it
            self.credits_usd = float(state.get_meta("credits_usd") or self.credits_usd)
        spent = frozen = 0
        for task in tasks:
            usage = self.task_data(task)["meta"]["usage"]
            spent += usage["consume"]
            frozen += usage["frozen"]
        credits = max(0, round(self.credits_usd * UNITS_PER_USD) - spent)
        return _json_response(200, {"code": 200, "message": "success", "data": {
            "account_name": "simulator",
            "account_id": "simulator",
            "credits": credits,
            "equivalent_in_usd": round(credits / UNITS_PER_USD, 6),
            "frozen_credits": frozen,
            "spent_in_usd": round(spent / UNITS_PER_USD, 6),
            "plan": "simulator",
            "simulated": True,
        }})

    def _upload(self, body: bytes) -> _Response:
        try:
            request = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "invalid request body: not valid JSON")
        if not isinstance(request, dict):
            return _error(400, "invalid request body: expected {\"file_name\": ..., \"file_data\": ...}")
        file_name = request.get("file_name")
        file_data = request.get("file_data")
        if not isinstance(file_name, str) or not file_name.strip():
            return _error(400, "invalid request: file_name is required")
        if not isinstance(file_data, str) or not file_data.strip():
            return _error(400, "invalid request: file_data (base64) is required")
        payload = file_data.strip()
        if payload.lower().startswith("data:"):
            payload = payload.partition(",")[2]
        payload = "".join(payload.split())
        if len(payload) * 3 // 4 > UPLOAD_LIMIT + 3:
            return _error(400, "file too large: the upload limit is 10 MB")
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "invalid request: file_data is not valid base64")
        if len(data) > UPLOAD_LIMIT:
            return _error(400, "file too large: the upload limit is 10 MB")
        if not data:
            return _error(400, "invalid request: file_data is empty")
        base = _SAFE_NAME.sub("_", Path(file_name.strip().replace("\\", "/")).name).strip("._") or "file"
        name = f"{uuid.uuid4().hex[:16]}-{base[-80:]}"
        assert self._uploads_dir is not None
        target = self._uploads_dir / name
        target.write_bytes(data)
        return _json_response(200, {"code": 200, "message": "success", "data": {
            "url": f"{self.base_url}/files/{name}"}})

    def _file_path(self, name: str) -> Path | None:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        if name.endswith(".mp4"):
            task = self._find(name[:-4])
            if task is not None:
                path = task.render.path
                return path if task.state()["status"] == "completed" and path.is_file() else None
        assert self._uploads_dir is not None
        path = self._uploads_dir / name
        return path if path.is_file() else None

    def _download(self, name: str, headers: Mapping[str, str]) -> _Response:
        path = self._file_path(name)
        if path is None:
            return _error(404, "file not found (it may not be ready yet)")
        size = path.stat().st_size
        extension = name.rpartition(".")[2].lower()
        kind = ("video/mp4" if extension == "mp4" else IMAGE_EXT_MIME.get(extension)
                or mimetypes.guess_type(name)[0] or "application/octet-stream")
        out = {"Content-Type": kind, "Accept-Ranges": "bytes", "Access-Control-Allow-Origin": "*",
               "Cache-Control": "public, max-age=3600"}
        wanted = headers.get("Range")
        if wanted:
            span = _parse_range(wanted, size)
            if span is None:
                return _Response(416, b"", {**out, "Content-Range": f"bytes */{size}"})
            start, length = span
            out["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
            return _Response(206, headers=out, file=path, file_range=(start, length))
        return _Response(200, headers=out, file=path, file_range=(0, size))


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, length) for one `bytes=` range; None when it cannot be satisfied."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size)
        return (size - length, length) if length > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end - start + 1
