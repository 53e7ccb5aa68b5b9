"""Traces: what one real run exchanged with PiAPI, read back and served again.

Why: nobody here can reach PiAPI, so the shapes its answers really take come from users.
`framepack record` writes one run's whole exchange (the create reply and every poll, with
the key, image data and signed URL query strings removed) as JSON; a simulator made with
`replay=` serves that exchange to any client, so a bug report becomes a test.

A trace (format "framepack-trace", version 1):

    {"format": "framepack-trace", "version": 1,
     "source": "where it came from: a PiAPI docs page, or 'framepack record ...'",
     "request": {...the create body...},                   (optional)
     "exchanges": [{"t": 0.0, "call": "create", "status": 200, "body": {...}},
                   {"t": 3.1, "call": "get", "status": 200, "body": {...}}, ...],
     "outcome": "completed",                                (optional: what happened)
     "expect": {"status": "completed", "video": true}}      (optional: what a client must conclude)

`call` is one of create, get, cancel, upload, account, download; `body` is the JSON
answer, or `text` the answer when it was not JSON. Replaying, every create starts a
session that answers with the recorded create reply; each GET of that session's task gets
the next recorded GET answer, in order (the last one repeats). The task id is the
recorded one (with a suffix for later sessions), and every http(s) URL in an answer (in
its body, or in its text, JSON or not) points at a video this simulator renders from the
create request's start image: a replayed trace never sends a client to the host it names.

A trace is data from somewhere else: its duration is clamped to what PiAPI takes (10 to 30
s), and one nested deeper than `MAX_DEPTH` levels is refused, with the file named.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import MAX_DURATION, MIN_DURATION
from ..errors import FramepackError

__all__ = ["CALLS", "MAX_DEPTH", "TRACE_FORMAT", "TRACE_VERSION", "Exchange", "Replay", "Trace", "TraceError", "load_trace"]

TRACE_FORMAT = "framepack-trace"
TRACE_VERSION = 1
CALLS = ("create", "get", "cancel", "upload", "account", "download")
#: Nesting a trace may have: PiAPI's envelopes are a handful of levels deep.
MAX_DEPTH = 64
_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


class TraceError(FramepackError, ValueError):
    """The file is not a trace this version can read; the message says what is wrong."""


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as recorded."""

    call: str
    status: int
    body: Any = None  # the JSON answer (None when there was none, or it was not JSON)
    text: str | None = None  # the answer when it was not JSON
    t: float = 0.0  # seconds after the first request


@dataclass(frozen=True)
class Trace:
    """A trace, checked."""

    source: str
    exchanges: tuple[Exchange, ...]
    request: Mapping[str, Any] | None = None
    expect: Mapping[str, Any] | None = None
    outcome: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def of(self, call: str) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.call == call]

    @property
    def task_id(self) -> str | None:
        """The task id the answers name (the create reply's, else the first GET's)."""
        for exchange in self.of("create") + self.of("get"):
            found = _task_id(exchange.body) or _task_id(_json_in(exchange.text))
            if found:
                return found
        return None

    @property
    def duration(self) -> int:
        """The requested video length, clamped to what PiAPI takes (10 s when the trace does not say)."""
        given = (self.request or {}).get("input") if isinstance(self.request, Mapping) else None
        value = given.get("duration") if isinstance(given, Mapping) else None
        if not isinstance(value, int) or isinstance(value, bool):
            return MIN_DURATION
        return max(MIN_DURATION, min(MAX_DURATION, value))


def _json_in(text: str | None) -> Any:
    """The JSON a recorded text answer holds (a client would read it so), else None."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _task_id(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    data = body.get("data")
    for holder in (data, body):
        if isinstance(holder, Mapping) and isinstance(holder.get("task_id"), str) and holder["task_id"]:
            return holder["task_id"]
    return None


def load_trace(source: "str | Path | Mapping[str, Any]") -> Trace:
    """Read and check a trace (a path, or the parsed JSON); TraceError says what is wrong."""
    if isinstance(source, Mapping):
        raw: Any = source
        where = "the trace"
    else:
        path = Path(source).expanduser()
        where = str(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TraceError(f"no trace at {where}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceError(f"{where} is not a JSON trace ({exc.__class__.__name__}: {exc})") from None
        except RecursionError:
            raise TraceError(_too_deep_message(where)) from None
    if _deeper_than(raw, MAX_DEPTH):
        raise TraceError(_too_deep_message(where))
    if not isinstance(raw, Mapping) or raw.get("format") != TRACE_FORMAT:
        raise TraceError(f"{where} is not a framepack trace (its \"format\" must be {TRACE_FORMAT!r})")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= TRACE_VERSION:
        raise TraceError(f"{where} has version {version!r}; this framepack_widgets reads version {TRACE_VERSION}")
    source_text = raw.get("source")
    if not isinstance(source_text, str) or not source_text.strip():
        raise TraceError(f"{where} does not say where it came from (\"source\")")
    items = raw.get("exchanges")
    if not isinstance(items, list) or not items:
        raise TraceError(f"{where} has no exchanges")
    exchanges = tuple(_exchange(item, f"{where}, exchange {n + 1}") for n, item in enumerate(items))
    if not any(exchange.call in ("create", "get") for exchange in exchanges):
        raise TraceError(f"{where} has neither a create nor a get exchange")
    request = raw.get("request")
    expect = raw.get("expect")
    outcome = raw.get("outcome")
    return Trace(
        source=source_text.strip(),
        exchanges=exchanges,
        request=request if isinstance(request, Mapping) else None,
        expect=expect if isinstance(expect, Mapping) else None,
        outcome=outcome if isinstance(outcome, str) else None,
        raw=raw,
    )


def _exchange(item: Any, where: str) -> Exchange:
    if not isinstance(item, Mapping):
        raise TraceError(f"{where} is not an object")
    call = item.get("call")
    if call not in CALLS:
        raise TraceError(f"{where}: call {call!r} is not one of {', '.join(CALLS)}")
    status = item.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise TraceError(f"{where}: status {status!r} is not an HTTP status")
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise TraceError(f"{where}: text must be a string")
    t = item.get("t", 0.0)
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TraceError(f"{where}: t must be seconds")
    return Exchange(call=call, status=status, body=item.get("body"), text=text, t=float(t))


def _too_deep_message(where: str) -> str:
    return (f"{where} is nested more than {MAX_DEPTH} levels deep; no PiAPI answer is. "
            "It is not a trace framepack record wrote: record the run again.")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _point_urls(value: Any, url: str) -> Any:
    """`value` with every http(s) URL in it replaced by `url` (the replay's own video), also
    inside a longer string."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(url, value) if "://" in value else value
    if isinstance(value, list):
        return [_point_urls(item, url) for item in value]
    if isinstance(value, dict):
        return {key: _point_urls(item, url) for key, item in value.items()}
    return value




def _renamed(value: Any, old: str | None, new: str) -> Any:
    if old is None or old == new:
        return value
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, list):
        return [_renamed(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _renamed(item, old, new) for key, item in value.items()}
    return value


@dataclass
class _Session:
    task_id: str | None
    file: str  # the video this session's URLs point at ("replay-<n>.mp4")
    gets: int = 0
    cancels: int = 0


class Replay:
    """Serves one trace to any number of creates (sessions), each with its own task id."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._sessions: dict[str, _Session] = {}
        self._files: dict[str, _Session] = {}
        self._count = 0
        self._lock = threading.Lock()

    def start(self) -> _Session:
        """A new session (what one create request starts)."""
        with self._lock:
            n = self._count
            self._count += 1
            recorded = self.trace.task_id
            task_id = None if recorded is None else (recorded if n == 0 else f"{recorded}-replay{n}")
            session = _Session(task_id, f"replay-{n}.mp4")
            if task_id is not None:
                self._sessions[task_id] = session
            self._files[session.file] = session
        return session

    def is_video(self, name: str) -> bool:
        return name in self._files

    def answer(self, session: _Session, call: str, video_url: str) -> tuple[int, Any, str | None] | None:
        """(status, JSON body, text) of the session's next `call` answer; None when the trace has none."""
        recorded = self.trace.of(call)
        if not recorded:
            return None
        with self._lock:
            if call == "create":
                index = 0
            elif call == "get":
                index, session.gets = min(session.gets, len(recorded) - 1), session.gets + 1
            else:
                index, session.cancels = min(session.cancels, len(recorded) - 1), session.cancels + 1
        exchange = recorded[index]
        old, new = self.trace.task_id, session.task_id or ""
        body = _point_urls(_renamed(copy.deepcopy(exchange.body), old, new), video_url)
        text = exchange.text
        if text is not None:  # a text answer that holds JSON is what a client reads: rewritten as JSON
            parsed = _json_in(text)
            text = (_URL_IN_TEXT.sub(video_url, text) if parsed is None
                    else json.dumps(_point_urls(_renamed(parsed, old, new), video_url), ensure_ascii=False))
        return exchange.status, body, text

    def session(self, task_id: str) -> _Session | None:
        with self._lock:
            return self._sessions.get(task_id)

    def download_status(self) -> int | None:
        """The recorded download's error status (an expired link), if it failed."""
        recorded = self.trace.of("download")
        return recorded[-1].status if recorded and recorded[-1].status >= 400 else None

