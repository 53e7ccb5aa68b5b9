"""Faults the simulator can inject, and the bookkeeping of which request gets which.

A `Fault` is a small frozen description ("answer the next two create requests with 503
and Retry-After: 2"); `FaultBook` holds the active ones and decides, under a lock, which
fault (if any) applies to each incoming request, so concurrent clients see exactly
`times` faulty answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["ENDPOINTS", "Fault", "FaultBook", "FaultKind"]

ENDPOINTS = ("create", "get", "cancel", "account", "upload", "download")
FaultKind = Literal["status", "slow", "drop_before_body", "drop_after_body", "malformed", "fail_task"]
_KINDS = ("status", "slow", "drop_before_body", "drop_after_body", "malformed", "fail_task")

_DEFAULT_MESSAGES = {
    400: "bad request",
    401: "Unauthorized: invalid or missing x-api-key",
    403: "Insufficient plan level",
    404: "Record Not Found",
    408: "request timeout",
    409: "conflict",
    429: "too many requests, please slow down and retry later",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable, please retry later",
    504: "gateway timeout",
}


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour for one endpoint ("create", "get", ..., or "*" for all).

    kind:
      - "status": answer `status` (429, 500, 503, ...) with a PiAPI-like error body and,
        when `retry_after` is set, a Retry-After header: seconds, or an HTTP-date that many
        seconds ahead when `http_date` is true (a `datetime` or a ready string is sent as is).
        For create, no task is made.
      - "slow": wait `delay` wall seconds, then handle the request normally.
      - "drop_before_body": close the connection before reading the body; no task is made.
      - "drop_after_body": read the body and handle the request (a create DOES make a task),
        then close the connection without an answer.
      - "malformed": handle the request (a create makes a task), answer 200 with a
        truncated JSON body.
      - "fail_task": (create only) the task is made normally but fails `delay` simulated
        seconds into processing (default: a third of the way through) with `message`.
    `after` skips the first N matching requests; `times` is how many it applies to
    (None: every one after that).
    """

    kind: FaultKind
    endpoint: str = "*"
    status: int | None = None
    retry_after: float | int | str | datetime | None = None
    http_date: bool = False
    delay: float | None = None
    message: str | None = None
    times: int | None = 1
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(_KINDS)}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; use one of {', '.join(ENDPOINTS)} or '*'")
        if self.kind == "status" and (self.status is None or not 400 <= int(self.status) <= 599):
            raise ValueError("a status fault needs an HTTP error status between 400 and 599")
        if self.kind == "slow" and (self.delay is None or self.delay < 0):
            raise ValueError("a slow fault needs delay= (seconds, >= 0)")
        if self.kind == "fail_task" and self.endpoint not in ("create", "*"):
            raise ValueError("fail_task applies to tasks, so its endpoint must be 'create'")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None (forever)")
        if self.after < 0:
            raise ValueError("after must be >= 0")

    # Constructor helpers -------------------------------------------------------------

    @classmethod
    def status_code(
        cls,
        status: int,
        endpoint: str = "*",
        *,
        retry_after: float | int | str | datetime | None = None,
        http_date: bool = False,
        message: str | None = None,
        times: int | None = 1,
        after: int = 0,
    ) -> "Fault":
        """An error answer, e.g. `Fault.status_code(503, "create", retry_after=2)`."""
        return cls("status", endpoint, status=status, retry_after=retry_after, http_date=http_date,
                   message=message, times=times, after=after)

    @classmethod
    def slow(cls, delay: float, endpoint: str = "*", *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls("slow", endpoint, delay=delay, times=times, after=after)

    @classmethod
    def drop_before_body(cls, endpoint: str = "*", *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls("drop_before_body", endpoint, times=times, after=after)

    @classmethod
    def drop_after_body(cls, endpoint: str = "*", *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls("drop_after_body", endpoint, times=times, after=after)

    @classmethod
    def malformed(cls, endpoint: str = "*", *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls("malformed", endpoint, times=times, after=after)

    @classmethod
    def fail_task(
        cls, message: str = "GPU out of memory", *, after_seconds: float | None = None,
        times: int | None = 1, after: int = 0,
    ) -> "Fault":
        """The next created task fails `after_seconds` (simulated) into processing."""
        return cls("fail_task", "create", delay=after_seconds, message=message, times=times, after=after)

    # Error answers -------------------------------------------------------------------

    def error_message(self) -> str:
        if self.message:
            return self.message
        return _DEFAULT_MESSAGES.get(int(self.status or 500), "error")

    def matches(self, endpoint: str | None) -> bool:
        return endpoint is not None and (self.endpoint == "*" or self.endpoint == endpoint)


class _StatusHelper:
    """`Fault.status(503, ...)` on the class builds a fault; `fault.status` on an instance
    is the field (instance attributes win over this non-data descriptor)."""

    def __get__(self, obj: object, owner: type | None = None) -> object:
        if obj is None:
            return Fault.status_code
        return obj.__dict__.get("status")  # pragma: no cover - the instance dict answers first


Fault.status = _StatusHelper()  # type: ignore[assignment, method-assign]


@dataclass
class _Slot:
    fault: Fault
    seen: int = 0
    applied: int = 0

    def take(self) -> bool:
        """Count one matching request; True when the fault applies to it."""
        self.seen += 1
        if self.seen <= self.fault.after:
            return False
        if self.fault.times is not None and self.applied >= self.fault.times:
            return False
        self.applied += 1
        return True

    @property
    def spent(self) -> bool:
        return self.fault.times is not None and self.applied >= self.fault.times


@dataclass
class FaultBook:
    """The active faults; `pick` and `pick_task_failure` are atomic."""

    _slots: list[_Slot] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        with self._lock:
            self._slots.append(_Slot(fault))

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [slot.fault for slot in self._slots if not slot.spent]

    def pick(self, endpoint: str | None) -> Fault | None:
        """The request-level fault for this request (the first that applies), if any.

        Every matching fault counts the request (for `after`), whether or not it wins.
        """
        return self._pick(lambda fault: fault.kind != "fail_task" and fault.matches(endpoint))

    def pick_task_failure(self) -> Fault | None:
        """Called once per task actually created."""
        return self._pick(lambda fault: fault.kind == "fail_task")

    def _pick(self, applies: Callable[[Fault], bool]) -> Fault | None:
        """The first unspent fault that `applies` and takes this one; the others that apply count it."""
        chosen: Fault | None = None
        with self._lock:
            for slot in self._slots:
                if slot.spent or not applies(slot.fault):
                    continue
                if chosen is None:
                    if slot.take():
                        chosen = slot.fault
                else:
                    slot.seen += 1
        return chosen
