"""The simulator's HTTP side: the loopback server, routing, and how answers go on the wire.

Why a real server: the project's clients, the widget, the CLI and the benchmarks all talk
HTTP, so the simulator exercises exactly the code that talks to PiAPI (retries, dropped
connections, Retry-After, slow answers) without a key or a network. This module knows
nothing of tasks: it reads a request, finds its endpoint, applies the fault (if any) the
fault book picks for it, hands the rest to the simulator's `answer` callable, and writes
the answer: `http.server.ThreadingHTTPServer` with HTTP/1.1 keep-alive, one thread per
connection (100+ polling clients are fine), TCP_NODELAY and one write per small answer.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..constants import IMAGE_EXT_MIME, SIMULATOR_HEADER, VERSION
from ..errors import FramepackError
from ._faults import Fault, FaultBook

__all__ = ["RequestRecord", "Response", "SimHTTPServer", "error_response", "file_response", "json_response", "route"]

logger = logging.getLogger("framepack_widgets.simulator")

BODY_LIMIT = 64 * 1024 * 1024

_TASK_PATH = re.compile(r"^/api/v1/task/([^/]+)$")
#: PiAPI's own CLI cancels with `POST /api/v1/task/{id}/cancel` (its docs show DELETE): both are served.
_CANCEL_PATH = re.compile(r"^/api/v1/task/([^/]+)/cancel$")
_FILE_PATH = re.compile(r"^/files/([^/]+)$")


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
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    file_range: tuple[int, int] | None = None  # (start, length) within `file`


#: The simulator's answer to a routed request: (endpoint, method, path argument, body, headers) -> Response.
Answer = Callable[[str | None, str, str | None, bytes, Mapping[str, str]], Response]
#: Notes a request on arrival: (method, path, endpoint) -> its RequestRecord.
Record = Callable[[str, str, str | None], RequestRecord]


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status, body, out)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """PiAPI's error body, `{"code": status, "message": ...}`."""
    return json_response(status, {"code": status, "message": message}, headers)


def file_response(path: Path, headers: Mapping[str, str]) -> Response:
    """A public file (a video or an upload), whole or the one byte range the request asks for."""
    size = path.stat().st_size
    extension = path.name.rpartition(".")[2].lower()
    kind = ("video/mp4" if extension == "mp4" else IMAGE_EXT_MIME.get(extension)
            or mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    out = {"Content-Type": kind, "Accept-Ranges": "bytes", "Access-Control-Allow-Origin": "*",
           "Cache-Control": "public, max-age=3600"}
    wanted = headers.get("Range")
    if wanted:
        span = _parse_range(wanted, size)
        if span is None:
            return Response(416, b"", {**out, "Content-Range": f"bytes */{size}"})
        start, length = span
        out["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        return Response(206, headers=out, file=path, file_range=(start, length))
    return Response(200, headers=out, file=path, file_range=(0, size))


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


def route(method: str, path: str) -> tuple[str | None, str | None, bool]:
    """(endpoint name, path argument, method allowed) for a request."""
    if path == "/api/v1/task":
        return "create", None, method == "POST"
    match = _CANCEL_PATH.match(path)
    if match:
        return "cancel", unquote(match.group(1)), method == "POST"
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


class _Dropped(FramepackError):
    """Close the connection without answering (never leaves this module)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FramepackSimulator/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    server: "SimHTTPServer"

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
        server = self.server
        path = urlsplit(self.path).path.rstrip("/")
        endpoint, argument, allowed = route(self.command, path)
        record = server.record(self.command, path or "/", endpoint)
        fault = server.faults.pick(endpoint) if endpoint is not None else None
        if fault is not None:
            record.fault = fault.kind
        try:
            if fault is not None and fault.kind == "drop_before_body":
                raise _Dropped
            body = self._read_body()
            if isinstance(body, Response):
                response = body
            elif fault is not None and fault.kind == "status":
                response = _fault_response(fault)
            elif fault is not None and fault.kind == "redirect":  # nothing handled: it points elsewhere
                response = _redirect_response(fault)
            elif fault is not None and fault.kind == "html" and fault.status != 200:
                response = _html_page(int(fault.status or 502))
            elif fault is not None and fault.refuses:  # an error code in a 200 envelope; nothing made
                response = json_response(200, {"code": fault.code, "message": fault.error_message(), "data": None})
            else:
                if fault is not None and fault.kind == "slow":
                    if server.stopping.wait(float(fault.delay or 0.0)):
                        raise _Dropped
                if not allowed:
                    if endpoint is None and path != "":
                        response = error_response(404, f"no such endpoint: {self.command} {path or '/'}")
                    else:
                        response = error_response(405, f"method {self.command} is not allowed on {path or '/'}")
                else:
                    try:
                        response = server.answer(endpoint, self.command, argument, body, self.headers)
                    except Exception as exc:  # noqa: BLE001 - a bug here must still answer
                        logger.exception("the simulator failed on %s %s", self.command, path)
                        response = error_response(500, f"simulator internal error: {exc.__class__.__name__}: {exc}")
                if fault is not None and fault.kind == "drop_after_body":
                    raise _Dropped
                if fault is not None and fault.kind == "malformed":
                    response = _malformed(response)
                if fault is not None and fault.kind == "html":
                    response = _html_page(200)
                if fault is not None and fault.kind in ("envelope", "bare_reply", "task_id"):
                    response = _rewritten(fault, response)
        except _Dropped:
            self._drop()
            return
        key = self.headers.get("x-api-key")
        if server.echo_key and key:
            response = _echoing(response, key)
        record.status = response.status
        self._send(response)

    def _read_body(self) -> bytes | Response:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    return error_response(400, "invalid chunked request body")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > BODY_LIMIT:
                    self.close_connection = True
                    return error_response(413, f"request body too large: {BODY_LIMIT // (1024 * 1024)} MB maximum")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            return error_response(400, "invalid Content-Length header")
        if length > BODY_LIMIT:
            self.close_connection = True
            return error_response(413, f"request body too large: {BODY_LIMIT // (1024 * 1024)} MB maximum")
        return self.rfile.read(length) if length > 0 else b""

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, response: Response) -> None:
        head_only = self.command == "HEAD"
        if response.file is not None:
            start, length = response.file_range or (0, response.file.stat().st_size)
        else:
            start, length = 0, len(response.body)
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = {
            "Server": self.server_version,
            "Date": self.date_time_string(),
            SIMULATOR_HEADER: VERSION,  # clients know they talk to the simulator, not to PiAPI
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


def _fault_response(fault: Fault) -> Response:
    """The error answer of a "status" fault, with its Retry-After header when it has one."""
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
    return error_response(status, fault.error_message(), headers)


def _redirect_response(fault: Fault) -> Response:
    """A redirect (301/302/303/307/308) to `fault.location`, as a misconfigured proxy or a
    hostile server answers; the request is not handled."""
    status = int(fault.status or 307)
    body = f'<!doctype html><html><body>Moved: <a href="{fault.location}">here</a></body></html>'.encode()
    return Response(status, body, {"Location": str(fault.location), "Content-Type": "text/html; charset=utf-8"})


def _rewritten(fault: Fault, response: Response) -> Response:
    """A handled request's 200 answer, reworded: an error code in the envelope (the task's
    data kept or dropped), the bare `{task_id, status, created_at}` create reply, or
    another task id (a hostile one) in place of the task's."""
    if response.status != 200 or response.file is not None:
        return response
    try:
        envelope = json.loads(response.body)
    except ValueError:
        return response
    data = envelope.get("data") if isinstance(envelope, dict) else None
    if fault.kind == "bare_reply" and isinstance(data, dict):
        meta = data.get("meta") or {}
        return json_response(200, {"task_id": data.get("task_id"), "status": data.get("status"),
                                   "created_at": meta.get("created_at")})
    if fault.kind == "envelope":
        return json_response(200, {"code": fault.code, "message": fault.error_message(),
                                   "data": data if fault.with_data else None})
    if fault.kind == "task_id" and isinstance(data, dict):
        return json_response(200, {**envelope, "data": {**data, "task_id": fault.message}})
    return response


def _echoing(response: Response, key: str) -> Response:
    """The answer with the caller's key echoed everywhere a careless API might put it."""
    headers = {**response.headers, "X-Echo-Key": key}
    if response.file is not None:
        return Response(response.status, response.body, headers, response.file, response.file_range)
    try:
        payload = json.loads(response.body)
    except ValueError:
        return Response(response.status, response.body + f" key={key}".encode(), headers)
    if isinstance(payload, dict):
        payload["message"] = f"{payload.get('message') or ''} (request signed with {key})"
        data = payload.get("data")
        if isinstance(data, dict) and "task_id" in data:
            data["logs"] = [*(data.get("logs") or []), f"authorised by x-api-key {key}"]
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            if error.get("message"):
                error["message"] = f"{error['message']} [key {key}]"
            error["raw_message"] = f"trace: key={key}"
            data["error"] = error
    echoed = json_response(response.status, payload)
    return Response(echoed.status, echoed.body, {**echoed.headers, **headers})


def _html_page(status: int) -> Response:
    """What a proxy or a captive portal answers: a web page, not the API's JSON."""
    body = (f"<!doctype html><html><head><title>{status}</title></head><body><h1>{status}</h1>"
            "<p>The upstream server is not available. Please try again later.</p></body></html>").encode()
    return Response(status, body, {"Content-Type": "text/html; charset=utf-8"})


def _malformed(response: Response) -> Response:
    """The same answer cut in half: a 200 whose JSON does not parse."""
    if response.file is not None:
        start, length = response.file_range or (0, response.file.stat().st_size)
        with response.file.open("rb") as handle:
            handle.seek(start)
            body = handle.read(max(1, length // 2))
        return Response(200, body, dict(response.headers))
    body = response.body or b'{"code":200,"message":"success","data":{}}'
    headers = dict(response.headers)
    headers["Content-Type"] = "application/json; charset=utf-8"
    return Response(200, body[: max(1, len(body) // 2)], headers)


class SimHTTPServer(ThreadingHTTPServer):
    """The listening socket and its connection threads; `answer` answers what it routes.

    Every request is passed to `record` on arrival (the record it returns is completed
    with the status sent), and the fault book decides which ones misbehave. `stopping`
    cuts a slow fault's wait short when the simulator stops.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int, *, answer: Answer, record: Record,
                 faults: FaultBook, stopping: threading.Event, echo_key: bool = False) -> None:
        self.address_family = family
        self.echo_key = echo_key
        self.answer = answer
        self.record = record
        self.faults = faults
        self.stopping = stopping
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
