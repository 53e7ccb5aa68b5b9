"""`Task`: an immutable snapshot of PiAPI's task envelope, parsed defensively.

Everything the reference marks unverified (status spelling, where the video URL lives,
`code` 0 versus 200, Go's zero time) is decided here and nowhere else.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Task", "TaskStatus", "parse_task", "find_video_url", "parse_time"]


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
        """Case-insensitive; anything unrecognised is UNKNOWN, never an exception."""
        if isinstance(value, TaskStatus):
            return value
        text = str(value or "").strip().lower()
        if text == "canceled":
            text = "cancelled"
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


def find_video_url(output: object) -> str | None:
    """Look where the reference says, in its order; the first http(s) URL wins."""
    if not isinstance(output, Mapping):
        return None
    candidates: list[object] = [output.get("video_url")]
    video = output.get("video")
    if isinstance(video, Mapping):
        candidates.append(video.get("url"))
    else:
        candidates.append(video)
    works = output.get("works")
    if isinstance(works, list):
        for work in works:
            if isinstance(work, Mapping) and isinstance(work.get("video"), Mapping):
                candidates.append(work["video"].get("resource_without_watermark"))
                candidates.append(work["video"].get("resource"))
    for candidate in candidates:
        url = _http_url(candidate)
        if url:
            return url
    return None


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
    if not isinstance(value, list):
        return ()
    lines: list[str] = []
    for item in value:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, Mapping):
            text = item.get("message") or item.get("msg") or item.get("log")
            lines.append(str(text) if text is not None else str(dict(item)))
        elif item is not None:
            lines.append(str(item))
    return tuple(lines)


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


def _error_message(error: object) -> str | None:
    if isinstance(error, str):
        return error.strip() or None
    if not isinstance(error, Mapping):
        return None
    for key in ("message", "raw_message"):
        text = error.get(key)
        if isinstance(text, str) and text.strip():
            return text.strip()
    code = error.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return f"error code {code}"
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

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def consume(self) -> int | None:
        """The charge in the account's units (`meta.usage.consume`), when reported."""
        if not self.usage:
            return None
        value = self.usage.get("consume")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

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
        status = TaskStatus.parse(data.get("status"))
        return cls(
            task_id=str(data.get("task_id") or data.get("id") or ""),
            status=status,
            video_url=find_video_url(output),
            error=_error_message(data.get("error")),
            logs=_as_logs(data.get("logs")),
            percent=percent,
            created_at=parse_time(meta.get("created_at", data.get("created_at"))),
            started_at=parse_time(meta.get("started_at", data.get("started_at"))),
            ended_at=parse_time(meta.get("ended_at", data.get("ended_at"))),
            usage=dict(usage) if usage else None,
            raw=_slim(data),
        )


def parse_task(envelope: Mapping[str, Any]) -> Task:
    """Parse a whole envelope (`{"code", "message", "data"}`), or a bare `data` object.

    Raises ValueError when there is no task in it; the client turns that into an APIError.
    """
    if not isinstance(envelope, Mapping):
        raise ValueError("the response is not a JSON object")
    data = envelope.get("data") if "data" in envelope else envelope
    if not isinstance(data, Mapping):
        raise ValueError("the response has no task data")
    task = Task.from_data(data)
    if not task.task_id:
        raise ValueError("the response has no task_id")
    return task
