"""Where a run is in its life: its stages, what a task status moves it to, and its history's entries.

The API's own status (`TaskStatus`) is kept apart on the run; a `RunStage` is this package's
view of the whole run, from stored-not-sent to a video in the store (or a bad ending that
says what to do). Pure standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ..task import TaskStatus

__all__ = ["RunEvent", "RunStage", "UNFINISHED_STAGES", "as_time", "stage_for_status", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_time(value: object) -> datetime | None:
    """A timezone-aware datetime from a datetime, an ISO 8601 string or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    return as_time(datetime.fromisoformat(str(value)))


class RunStage(str, enum.Enum):
    """Where a run is in its life. The API's own status is kept apart (`Run.status`)."""

    QUEUED = "queued"  # stored, create request not sent (waiting for a slot)
    #: A timeline segment stored when the timeline was confirmed, waiting for the previous
    #: segment's last frame (its start image). Only its Timeline sends it; Runner.resume() never.
    WAITING = "waiting"
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
    def is_active(self) -> bool:
        """Something still drives it (or should): `await run` keeps waiting."""
        return self in _ACTIVE

    @property
    def is_final(self) -> bool:
        """Nothing drives it any more: `await run` returns. TIMED_OUT can still be re-attached."""
        return self not in _ACTIVE

    @property
    def needs_attention(self) -> bool:
        """Final for automation, but the person should decide what happens next."""
        return self in (RunStage.SUBMISSION_UNKNOWN, RunStage.TIMED_OUT)

    @property
    def in_flight(self) -> bool:
        """Stored but its create request has not been answered yet (Generate stays disabled)."""
        return self in (RunStage.QUEUED, RunStage.SUBMITTING)

    def __str__(self) -> str:
        return self.value


_ACTIVE = frozenset(
    {RunStage.QUEUED, RunStage.SUBMITTING, RunStage.PENDING, RunStage.PROCESSING, RunStage.DOWNLOADING}
)
#: What `RunStore.unfinished()` returns: still moving, or waiting for the person.
UNFINISHED_STAGES = (*(s for s in RunStage if s.is_active), RunStage.SUBMISSION_UNKNOWN, RunStage.TIMED_OUT)


class RunEvent(NamedTuple):
    """One entry of a run's status history."""

    at: datetime
    stage: RunStage
    status: TaskStatus | None
    percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "stage": self.stage.value,
                "status": None if self.status is None else self.status.value, "percent": self.percent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunEvent":
        status = data.get("status")
        return cls(as_time(data["at"]) or utcnow(), RunStage.parse(data.get("stage")),
                   TaskStatus.parse(status) if status else None, data.get("percent"))


def stage_for_status(status: TaskStatus, current: RunStage) -> RunStage:
    """The run stage a task status moves a run to (failures are decided by the error path)."""
    if status in (TaskStatus.PENDING, TaskStatus.STAGED):
        return RunStage.PENDING
    if status in (TaskStatus.PROCESSING, TaskStatus.RUNNING, TaskStatus.COMPLETED):
        return RunStage.PROCESSING
    return current
