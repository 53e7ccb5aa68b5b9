"""Recording what one run exchanged with PiAPI, safe to attach to a bug report.

Why: the client can only take the answer shapes someone has seen, and nobody here can
reach PiAPI. `TraceRecorder` hooks into the httpx client a `Client` sends through
(httpx's own event hooks) and keeps every API answer: the create reply and every poll,
with the time it came. What it writes never holds the API key (the header is never
recorded, and the key is taken out of any text), image data (base64 and data: URIs are
replaced by their length, also inside a longer text) or URL secrets (every URL, wherever it
sits in a text, loses its `user:password@` and its query string). The simulator reads the
file back (`Simulator(replay=...)`, `framepack simulator --replay`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from ..constants import VERSION
from ._redaction import redact, scrub_text
from ._settings import DEFAULT_TIMEOUT, POOL_LIMITS, Secret

__all__ = ["TRACE_FORMAT", "TRACE_VERSION", "TraceRecorder", "scrub"]

#: What the simulator's replay reads (`simulator._replay` checks the same two values).
TRACE_FORMAT = "framepack-trace"
TRACE_VERSION = 1

_SECRET_KEYS = {"secret", "x-api-key", "api_key", "apikey", "api-key", "authorization", "key", "token"}
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\r\n]+")  # no spaces: a long prompt is never taken for an image
_BASE64_MIN = 200  # shorter strings are words, ids and prompts, not images
_KEPT_HEADERS = ("content-type", "content-length", "retry-after", "retry-after-ms")
#: Fields that hold an image (or an uploaded file) when they are not a URL.
_IMAGE_KEY = re.compile(r"image|file_data")


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    text = redact(text, *secrets)
    stripped = text.strip()
    if stripped.lower().startswith("data:"):
        return f"<data URI removed: {len(stripped)} characters>"
    if len(stripped) >= _BASE64_MIN and _BASE64.fullmatch(stripped):
        return f"<image data removed: {len(stripped)} characters>"
    # URLs anywhere in it (an error message, a log line): no user:password@, no query string
    # (a signed URL's query is its signature); data: URIs inside a longer text by their length.
    return scrub_text(stripped if _is_url(stripped) else text)


def scrub(value: Any, secrets: "tuple[str, ...]" = ()) -> Any:
    """`value` (parsed JSON) without keys, secrets, image data or URL query strings."""
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key).lower()
            if name in _SECRET_KEYS and item not in (None, ""):
                out[key] = "<removed>"
            elif _IMAGE_KEY.search(name) and isinstance(item, str) and item and not _is_url(item):
                out[key] = f"<image data removed: {len(item)} characters>"  # however small
            else:
                out[key] = scrub(item, secrets)
        return out
    return value


def _call(request: httpx.Request, api_host: str) -> str:
    """Which call a request is: create, get, cancel, upload, account, or a video download."""
    path = request.url.path.rstrip("/")
    if path.endswith("/ephemeral_resource"):
        return "upload"
    if request.url.host != api_host:
        return "download"
    if path.endswith("/api/v1/task") and request.method == "POST":
        return "create"
    if "/api/v1/task/" in path:
        return "cancel" if request.method in ("DELETE", "POST") else "get"
    if path.endswith("/account/info"):
        return "account"
    return "download"


def _json(content: bytes) -> tuple[Any, str | None]:
    """(the JSON body, None), or (None, the text) when it is not JSON."""
    try:
        return json.loads(content.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, content.decode("utf-8", "replace")[:2000]


class TraceRecorder:
    """Keeps one run's exchange; `http_client()` / `async_http_client()` record through it.

        recorder = TraceRecorder(api_key=key, base_url=client_base_url)
        with Client(key, base_url=..., http_client=recorder.http_client()) as client:
            ...
        recorder.write("trace.json", outcome="completed")
    """

    def __init__(self, *, api_key: str | None = None, base_url: str = "https://api.piapi.ai",
                 source: str | None = None) -> None:
        self._secrets = tuple(s for s in (api_key.get() if isinstance(api_key, Secret) else api_key,) if s)
        self._api_host = httpx.URL(base_url).host
        self.source = source or f"recorded by framepack record (framepack_widgets {VERSION})"
        self.request: Any = None  # the create request's body, scrubbed
        self.exchanges: list[dict[str, Any]] = []
        self.unanswered: list[dict[str, Any]] = []
        self._started: float | None = None
        self._sent: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    # -- hooks
    def _elapsed(self) -> float:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        return round(now - self._started, 3)

    def on_request(self, request: httpx.Request) -> None:
        call = _call(request, self._api_host)
        with self._lock:
            self._sent[id(request)] = (self._elapsed(), call)
            if call == "create" and self.request is None:
                body, _ = _json(request.content)
                self.request = scrub(body, self._secrets)

    def on_response(self, response: httpx.Response) -> None:
        request = response.request
        call = _call(request, self._api_host)
        headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        entry: dict[str, Any] = {"call": call, "method": request.method, "status": response.status_code}
        if call == "download":  # never the video itself: where it was, and what came back
            entry["url"] = _scrub_text(str(request.url), self._secrets)
        else:
            entry["path"] = _scrub_text(request.url.path, self._secrets)
            body, text = _json(response.read())
            try:
                if text is None:
                    entry["body"] = scrub(body, self._secrets)
                else:
                    entry["text"] = _scrub_text(text, self._secrets)
            except RecursionError:  # an answer nested beyond reason: noted, not kept
                entry["text"] = "<an answer nested too deep to record>"
        entry["headers"] = scrub(headers, self._secrets)
        with self._lock:
            sent, _ = self._sent.pop(id(request), (self._elapsed(), call))
            entry["t"] = sent
            self.exchanges.append(entry)

    async def aon_request(self, request: httpx.Request) -> None:
        self.on_request(request)

    async def aon_response(self, response: httpx.Response) -> None:
        if _call(response.request, self._api_host) != "download":
            await response.aread()  # on_response reads what is already here
        self.on_response(response)

    # -- clients that record
    def http_client(
        self, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None
    ) -> httpx.Client:
        """An `httpx.Client` for `Client(http_client=...)` that records every answer
        (`transport`: httpx's, by default)."""
        return httpx.Client(timeout=timeout, limits=POOL_LIMITS, transport=transport,
                            event_hooks={"request": [self.on_request], "response": [self.on_response]})

    def async_http_client(
        self, timeout: float = DEFAULT_TIMEOUT, transport: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncClient:
        """The same for `AsyncClient(http_client=...)`."""
        return httpx.AsyncClient(timeout=timeout, limits=POOL_LIMITS, transport=transport,
                                 event_hooks={"request": [self.aon_request], "response": [self.aon_response]})

    # -- the trace
    def to_dict(self, *, outcome: str | None = None, note: str | None = None) -> dict[str, Any]:
        with self._lock:
            exchanges = sorted(self.exchanges, key=lambda e: e["t"])
            unanswered = [{"t": t, "call": call} for t, call in sorted(self._sent.values())]
        trace: dict[str, Any] = {
            "format": TRACE_FORMAT,
            "version": TRACE_VERSION,
            "source": self.source,
            "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "request": self.request,
            "exchanges": exchanges,
        }
        if unanswered:
            trace["unanswered"] = unanswered  # requests that got no HTTP answer (timeouts, resets)
        if outcome is not None:
            trace["outcome"] = _scrub_text(outcome, self._secrets)
        if note is not None:
            trace["note"] = note
        return trace

    def write(self, path: "str | os.PathLike[str]", *, outcome: str | None = None, note: str | None = None) -> Path:
        """Write the trace as JSON (atomically); returns the path written."""
        import tempfile  # imports shutil and the compressors: only when a trace is written

        dest = Path(os.fspath(path)).expanduser()
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(outcome=outcome, note=note), indent=2, ensure_ascii=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return dest
