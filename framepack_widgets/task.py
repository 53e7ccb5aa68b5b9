"""`Task`: an immutable snapshot of PiAPI's task envelope, parsed defensively.

Everything the reference marks unverified (status spelling, where the video URL lives,
`code` 0 versus 200, Go's zero time) is decided here and nowhere else. PiAPI's docs, its
official CLI and its MCP server show many shapes for one envelope; each is accepted here:

| what | accepted |
|---|---|
| status | any case; `success`/`succeeded`/`complete`/`finished` = completed, `error`/`failure`/`rejected` = failed, `queued`/`starting`/`retry` = pending, `staged`, `canceled`/`cancelled`; an unknown word with a video URL = completed, with an error message = failed, with neither = UNKNOWN (polled on) |
| task id | 1 to 256 of `A-Z a-z 0-9 . _ : @ + = ~ -`, starting with a letter or digit; anything else (a 70,000-character id, control characters, slashes, spaces) is refused where an answer becomes a `Task` (`InvalidInputError`, a `ValueError`), and where a caller names a task (`check_task_id`) |
| video | `video_url`; `video` (string, `{url}`, `{resource_without_watermark, resource}` or a list); `video_urls`; `works[].video.{resource_without_watermark, resource}`; `works[].resource.{resourceWithoutWatermark, resource}`; else the first http(s) URL anywhere in `output` (a video-looking one first) |
| times | `meta.*` or top level; `ended_at` or `completed_at`; `""` and Go's zero time = None |
| usage | `consume`/`frozen` as numbers or numeric strings |
| error | `message`, else `raw_message`, else a string; a bare code counts only on a failed task |
| logs | null, strings, or objects (`message`/`msg`/`log`/`text`/`content`) |
"""

from __future__ import annotations

import enum
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidInputError

__all__ = ["TASK_ID_MAX", "Task", "TaskStatus", "check_task_id", "parse_task", "find_video_url", "output_keys",
           "parse_time"]


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    STAGED = "staged"
    PROCESSING = "processing"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> "TaskStatus":
        """Case-insensitive, with the synonyms other PiAPI clients see; anything
        unrecognised is UNKNOWN, never an exception."""
        if isinstance(value, TaskStatus):
            return value
        if not isinstance(value, str):
            return cls.UNKNOWN
        text = value.strip().lower()
        text = _SYNONYMS.get(text, text)
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """Submitted and not finished: worth polling."""
        return not self.is_terminal

    def __str__(self) -> str:  # "completed", not "TaskStatus.COMPLETED"
        return self.value


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

#: Words other PiAPI models, its CLI and community clients use for the same states.
_SYNONYMS = {
    "success": "completed", "succeeded": "completed", "succeed": "completed", "finished": "completed",
    "complete": "completed",
    "error": "failed", "failure": "failed", "rejected": "failed",
    "queued": "pending", "starting": "pending", "retry": "pending",
    "canceled": "cancelled",
}


#: The longest task id taken. PiAPI's are UUIDs (36 characters); a URL path must stay short.
TASK_ID_MAX = 256
_TASK_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:@+=~-]{{0,{TASK_ID_MAX - 1}}}")


def check_task_id(value: object) -> str:
    """`value` when it is a task id this package can put in a URL path, a file name and a
    message; InvalidInputError (a ValueError) naming what is wrong otherwise."""
    if isinstance(value, str) and _TASK_ID.fullmatch(value):
        return value
    if not isinstance(value, str):
        shown = f"{type(value).__name__} {value!r}"[:80]
    elif not value:
        shown = "an empty string"
    else:
        head = repr(value[:40]) + ("…" if len(value) > 40 else "")
        shown = f"{len(value):,} characters: {head}" if len(value) > 40 else head
    raise InvalidInputError(
        f"A task id must be 1 to {TASK_ID_MAX} letters, digits or . _ : @ + = ~ - (starting with a letter or "
        f"digit), as PiAPI's are; this one is {shown}. Use the id PiAPI gave (a UUID)."
    )


_FROMISOFORMAT_IS_RFC3339 = sys.version_info >= (3, 11)  # Z and any number of fraction digits


def parse_time(value: object) -> datetime | None:
    """RFC 3339 with `Z` or an offset, any number of fraction digits; Go's zero time is None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("0001-01-01"):
        return None
    # Three per poll: try the fast path first, normalise only what it refuses.
    parsed = _fromisoformat(text) if _FROMISOFORMAT_IS_RFC3339 else None
    if parsed is None:
        parsed = _fromisoformat(_normalised_rfc3339(text))
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _fromisoformat(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _normalised_rfc3339(text: str) -> str:
    """`Z`/`z` as +00:00 and exactly 6 fraction digits, which older fromisoformat needs."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    date_part, sep, rest = text.partition(".")
    if sep:
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        text = f"{date_part}.{(digits + '000000')[:6]}{rest[i:]}"
    return text


def _http_url(value: object) -> str | None:
    if isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


_VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".m4v")
_WALK_LIMIT = 2000  # nodes looked at in the last-resort walk (a hostile answer cannot stall a poll)


def _resource_urls(holder: object, *keys: str) -> list[object]:
    """`holder[key]` for each key when holder is a mapping; a plain value is itself the candidate."""
    if isinstance(holder, Mapping):
        return [holder.get(key) for key in keys]
    if isinstance(holder, list):
        return [url for item in holder for url in _resource_urls(item, *keys)]
    return [holder]


def _documented_candidates(output: Mapping[str, Any]) -> list[object]:
    """The documented places, in the order the reference gives."""
    candidates: list[object] = [output.get("video_url")]
    candidates += _resource_urls(output.get("video"), "url", "resource_without_watermark", "resource")
    candidates += _resource_urls(output.get("video_urls"), "url")
    works = output.get("works")
    if isinstance(works, list):
        for work in works:
            if isinstance(work, Mapping):
                candidates += _resource_urls(work.get("video"), "resource_without_watermark", "resource")
                candidates += _resource_urls(work.get("resource"), "resourceWithoutWatermark",
                                             "resource_without_watermark", "resource")
    return candidates


def _walk_urls(output: object) -> list[str]:
    """Every http(s) URL in the tree, depth first in key order (what PiAPI's own CLI does)."""
    found: list[str] = []
    stack: list[object] = [output]
    seen = 0
    while stack and seen < _WALK_LIMIT:
        node = stack.pop()
        seen += 1
        if isinstance(node, Mapping):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
        else:
            url = _http_url(node)
            if url:
                found.append(url)
    return found


def _looks_like_video(url: str) -> bool:
    return url.split("?", 1)[0].split("#", 1)[0].lower().endswith(_VIDEO_SUFFIXES)


def find_video_url(output: object, *, walk: bool = True) -> str | None:
    """Look where the reference says, in its order; then (with `walk`), as a last resort,
    the first http(s) URL anywhere in `output`, one that looks like a video before any other."""
    if not isinstance(output, Mapping):
        return None
    for candidate in _documented_candidates(output):
        url = _http_url(candidate)
        if url:
            return url
    if not walk:
        return None
    urls = _walk_urls(output)
    return next((url for url in urls if _looks_like_video(url)), urls[0] if urls else None)


def _video_of(output: object, status: "TaskStatus") -> tuple[str | None, bool]:
    """(the video URL, whether it surely is the video). The walk through the whole output
    is only for a task that says it completed (or says something unknown): a running task's
    output may hold other URLs (a cover, the input image) that are not its video."""
    documented = find_video_url(output, walk=False)
    if documented or status not in (TaskStatus.COMPLETED, TaskStatus.UNKNOWN):
        return documented, documented is not None
    urls = _walk_urls(output) if isinstance(output, Mapping) else []
    video = next((url for url in urls if _looks_like_video(url)), None)
    if video is not None:
        return video, True
    return (urls[0] if urls and status is TaskStatus.COMPLETED else None), False


def output_keys(output: object) -> list[str]:
    """The keys of `output` that hold something, for messages ("it had: status, works")."""
    if not isinstance(output, Mapping):
        return []
    return [str(key) for key, value in output.items() if value not in (None, "", [], {})]


def _as_percent(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return max(0.0, min(100.0, number))


def _as_logs(value: object) -> tuple[str, ...]:
    """Log lines from null, a list of strings, or a list of objects (empty objects skipped)."""
    if not isinstance(value, list):
        return ()
    lines: list[str] = []
    for item in value:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, Mapping):
            if not item:
                continue
            text = next((item[k] for k in ("message", "msg", "log", "text", "content") if item.get(k)), None)
            lines.append(str(text) if text is not None else str(dict(item)))
        elif item is not None:
            lines.append(str(item))
    return tuple(lines)


def _as_number(value: object) -> int | float | None:
    """A count PiAPI may send as a number or a numeric string ("3000000")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number: float = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if float(number).is_integer() else number


_ECHO_LIMIT = 512


def _slim(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` without the input echo's long strings (PiAPI echoes base64 images back, and a
    snapshot is taken on every poll)."""
    raw = dict(data)
    echo = raw.get("input")
    if isinstance(echo, Mapping):
        raw["input"] = {
            k: (f"<{len(v)} characters>" if isinstance(v, str) and len(v) > _ECHO_LIMIT else v)
            for k, v in echo.items()
        }
    return raw


def _error_message(error: object, *, failed: bool) -> str | None:
    """The API's words for an error: `message`, else `raw_message`. A bare code is a
    placeholder PiAPI also sends on tasks that did not fail: it counts only on a failed task."""
    if isinstance(error, str):
        return error.strip() or None
    if not isinstance(error, Mapping):
        return None
    for key in ("message", "raw_message"):
        text = error.get(key)
        if isinstance(text, str) and text.strip():
            return text.strip()
    code = error.get("code")
    if failed and isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return f"error code {code}"
    return None


def _first_time(*values: object) -> datetime | None:
    """The first value that parses as a time (`""` and Go's zero time do not)."""
    for value in values:
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None


@dataclass(frozen=True)
class Task:
    """One look at a task. Compare two snapshots with `changed_since`."""

    task_id: str
    status: TaskStatus
    video_url: str | None = None
    error: str | None = None
    logs: tuple[str, ...] = ()
    percent: float | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    usage: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The API's own word for the status, as it came ("Completed", "succeeded", "generating").
    status_word: str | None = None


    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def consume(self) -> int | float | None:
        """The charge in the account's units (`meta.usage.consume`), when reported."""
        return _as_number(self.usage.get("consume")) if self.usage else None

    @property
    def frozen(self) -> int | float | None:
        """Credits held while the task runs (`meta.usage.frozen`), when reported."""
        return _as_number(self.usage.get("frozen")) if self.usage else None

    def changed_since(self, other: "Task | None") -> bool:
        """True when status, percent, logs, video or error differ: what `on_update` reports."""
        if other is None:
            return True
        return (
            self.status != other.status
            or self.percent != other.percent
            or self.logs != other.logs
            or self.video_url != other.video_url
            or self.error != other.error
            or self.status_word != other.status_word
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Task":
        """Build from the envelope's `data` object (also what webhooks carry)."""
        output = data.get("output")
        meta = data.get("meta") if isinstance(data.get("meta"), Mapping) else {}
        assert isinstance(meta, Mapping)
        usage = meta.get("usage") if isinstance(meta.get("usage"), Mapping) else None
        percent = None
        for holder in (output, data):
            if percent is None and isinstance(holder, Mapping):
                percent = _as_percent(holder.get("percent"))
                if percent is None:
                    percent = _as_percent(holder.get("progress"))
        word = data.get("status")
        status = TaskStatus.parse(word)
        video_url, surely_video = _video_of(output, status)
        if status is TaskStatus.UNKNOWN and surely_video:
            status = TaskStatus.COMPLETED  # an unknown word, but the video is there
        elif status is TaskStatus.UNKNOWN and _error_message(data.get("error"), failed=False):
            status = TaskStatus.FAILED  # an unknown word that says what went wrong: it ended
        return cls(
            # Once, where an answer becomes a Task: its id goes into URL paths, file names, messages.
            task_id=check_task_id(str(data.get("task_id") or data.get("id") or "")),
            status=status,
            video_url=video_url,
            error=_error_message(data.get("error"), failed=status is TaskStatus.FAILED),
            logs=_as_logs(data.get("logs")),
            percent=percent,
            created_at=_first_time(meta.get("created_at"), data.get("created_at")),
            started_at=_first_time(meta.get("started_at"), data.get("started_at")),
            ended_at=_first_time(meta.get("ended_at"), data.get("ended_at"), meta.get("completed_at"),
                                 data.get("completed_at")),
            usage=dict(usage) if usage else None,
            raw=_slim(data),
            status_word=str(word) if isinstance(word, (str, int, float)) and not isinstance(word, bool) else None,
        )


def parse_task(envelope: Mapping[str, Any]) -> Task:
    """Parse a whole envelope (`{"code", "message", "data"}`), or a bare `data` object.

    Raises `InvalidInputError` (a `ValueError`) when there is no task in it or its task id
    is unusable; the client turns that into an APIError.
    """
    if not isinstance(envelope, Mapping):
        raise InvalidInputError("the response is not a JSON object")
    data = envelope.get("data") if "data" in envelope else envelope
    if not isinstance(data, Mapping):
        raise InvalidInputError("the response has no task data")
    if not (data.get("task_id") or data.get("id")):
        raise InvalidInputError("the response names no task id (task_id)")
    return Task.from_data(data)
