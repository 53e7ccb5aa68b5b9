"""Faults the simulator can inject, and the bookkeeping of which request gets which.

A `Fault` is a small frozen description ("answer the next two create requests with 503
and Retry-After: 2"); `FaultBook` holds the active ones and decides, under a lock, which
fault (if any) applies to each incoming request, so concurrent clients see exactly
`times` faulty answers. Request faults apply to one request each; task faults
(`TASK_KINDS`) are picked when a task is created and shape every answer about it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..errors import InvalidInputError
from ._shapes import capitalised, check_output_shape, check_status_words

__all__ = ["ENDPOINTS", "TASK_KINDS", "Fault", "FaultBook", "FaultKind"]

ENDPOINTS = ("create", "get", "cancel", "account", "upload", "download")
FaultKind = Literal["status", "slow", "drop_before_body", "drop_after_body", "malformed", "envelope",
                    "bare_reply", "redirect", "task_id", "fail_task", "url_lag", "status_words", "output_shape"]
#: Faults picked once per created task (the others apply to one request each).
TASK_KINDS = ("fail_task", "url_lag", "status_words", "output_shape")
_KINDS = ("status", "slow", "drop_before_body", "drop_after_body", "malformed", "html", "envelope", "bare_reply",
          "redirect", "task_id", *TASK_KINDS)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

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
      - "envelope": answer HTTP 200 with PiAPI's envelope carrying error `code` and `message`.
        With `handled` the request is handled first (a create DOES make a task) and, with
        `with_data`, the answer still carries the task's data; without `handled` nothing is
        made (default: handled for codes that are not 4xx).
      - "html": an HTML page instead of JSON, as a proxy or a captive portal sends: with
        `status` 200 the request is handled first (a create DOES make a task), with an error
        status (502, say) it never reaches the API.
      - "bare_reply": (create) make the task, answer only `{task_id, status, created_at}`,
        as PiAPI's Framepack page shows the create reply.
      - "redirect": answer `status` (301, 302, 303, 307 or 308) with `Location: location`, as a
        misconfigured proxy or a hostile server does; nothing is handled (no task is made).
      - "task_id": handle the request (a create DOES make a task), then name `message` as the
        task's id in the answer, as a hostile or broken API might (70,000 characters,
        control characters, slashes).
      Task faults, picked when a task is created (`times` counts tasks):
      - "fail_task": the task is made normally but fails `delay` simulated seconds into
        processing (default: a third of the way through) with `message`.
      - "url_lag": the task says completed without a video URL for its first `count` GETs.
      - "status_words": its answers say `words[status]` instead of the status ("Completed",
        or a word no client knows).
      - "output_shape": its video is where `shape` puts it (see `_shapes.OUTPUT_SHAPES`).
    `after` skips the first N matching requests (tasks); `times` is how many it applies to
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
    code: int | None = None  # "envelope": the envelope's code
    handled: bool | None = None  # "envelope": handle the request before answering the code
    with_data: bool = False  # "envelope": the answer still carries the task's data
    count: int | None = None  # "url_lag": GETs without the URL
    words: tuple[tuple[str, str], ...] | None = None  # "status_words": (status, word) pairs
    shape: str | None = None  # "output_shape"
    location: str | None = None  # "redirect": where it points

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidInputError(f"unknown fault kind {self.kind!r}; use one of {', '.join(_KINDS)}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise InvalidInputError(f"unknown endpoint {self.endpoint!r}; use one of {', '.join(ENDPOINTS)} or '*'")
        if self.kind == "html" and (self.status is None or not (self.status == 200 or 400 <= int(self.status) <= 599)):
            raise InvalidInputError("an html fault's status is 200 (the request was handled) or an error status")
        if self.kind == "status" and (self.status is None or not 400 <= int(self.status) <= 599):
            raise InvalidInputError("a status fault needs an HTTP error status between 400 and 599")
        if self.kind == "redirect" and (self.status not in REDIRECT_STATUSES or not self.location):
            raise InvalidInputError(
                f"a redirect fault needs status= one of {', '.join(map(str, REDIRECT_STATUSES))} and location=")
        if self.kind == "task_id" and not isinstance(self.message, str):
            raise InvalidInputError("a task_id fault needs message= (the task id to answer with)")
        if self.kind == "slow" and (self.delay is None or self.delay < 0):
            raise InvalidInputError("a slow fault needs delay= (seconds, >= 0)")
        if self.kind in TASK_KINDS + ("bare_reply",) and self.endpoint not in ("create", "*"):
            raise InvalidInputError(f"{self.kind} applies to tasks, so its endpoint must be 'create'")
        if self.kind == "envelope" and (self.code is None or isinstance(self.code, bool)):
            raise InvalidInputError("an envelope fault needs code= (the envelope's error code)")
        if self.kind == "url_lag" and (self.count is None or self.count < 0):
            raise InvalidInputError("a url_lag fault needs count= (GETs without the URL, >= 0)")
        if self.kind == "status_words":
            check_status_words(dict(self.words or ()))
        if self.kind == "output_shape":
            check_output_shape(str(self.shape))
        if self.times is not None and self.times < 0:
            raise InvalidInputError("times must be >= 0 or None (forever)")
        if self.after < 0:
            raise InvalidInputError("after must be >= 0")

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
    def redirect(
        cls, status: int = 307, endpoint: str = "*", *, location: str, times: int | None = 1, after: int = 0
    ) -> "Fault":
        """A redirect to another address, e.g. `Fault.redirect(307, "create", location=other.base_url)`."""
        return cls("redirect", endpoint, status=status, location=location, times=times, after=after)

    @classmethod
    def task_id(cls, task_id: str, endpoint: str = "create", *, times: int | None = 1, after: int = 0) -> "Fault":
        """The answer names `task_id` instead of the task's own, e.g. `Fault.task_id("a" * 70_000)`."""
        return cls("task_id", endpoint, message=task_id, times=times, after=after)

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
    def html(cls, endpoint: str = "*", *, status: int = 200, times: int | None = 1, after: int = 0) -> "Fault":
        """An HTML page for an answer, e.g. `Fault.html("create", status=502)` (a proxy's error page)."""
        return cls("html", endpoint, status=status, times=times, after=after)

    @classmethod
    def fail_task(
        cls, message: str = "GPU out of memory", *, after_seconds: float | None = None,
        times: int | None = 1, after: int = 0,
    ) -> "Fault":
        """The next created task fails `after_seconds` (simulated) into processing."""
        return cls("fail_task", "create", delay=after_seconds, message=message, times=times, after=after)

    @classmethod
    def envelope(
        cls,
        code: int,
        endpoint: str = "*",
        *,
        message: str | None = None,
        handled: bool | None = None,
        with_data: bool = False,
        times: int | None = 1,
        after: int = 0,
    ) -> "Fault":
        """HTTP 200 with an error code in the envelope, e.g. `Fault.envelope(500, "create",
        handled=True)`: the task is made, the answer says 500 and names no task."""
        return cls("envelope", endpoint, code=int(code), message=message, handled=handled,
                   with_data=with_data, times=times, after=after)

    @classmethod
    def bare_reply(cls, *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls("bare_reply", "create", times=times, after=after)

    @classmethod
    def url_lag(cls, polls: int = 2, *, times: int | None = 1, after: int = 0) -> "Fault":
        """The next task says completed without its video URL for `polls` GETs."""
        return cls("url_lag", "create", count=int(polls), times=times, after=after)

    @classmethod
    def status_words(cls, words: Mapping[str, str], *, times: int | None = 1, after: int = 0) -> "Fault":
        """The next task's answers use `words[status]`, e.g. `{"processing": "generating"}`."""
        pairs = tuple(sorted(check_status_words(words).items()))
        return cls("status_words", "create", words=pairs, times=times, after=after)

    @classmethod
    def capitalised_statuses(cls, *, times: int | None = 1, after: int = 0) -> "Fault":
        return cls.status_words(capitalised(), times=times, after=after)

    @classmethod
    def output_shape(cls, shape: str, *, times: int | None = 1, after: int = 0) -> "Fault":
        """The next task puts its video where `shape` does (e.g. "works_video")."""
        return cls("output_shape", "create", shape=check_output_shape(shape), times=times, after=after)

    @property
    def refuses(self) -> bool:
        """An envelope fault that answers without handling the request (nothing is made)."""
        if self.kind != "envelope":
            return False
        handled = self.handled if self.handled is not None else not (400 <= int(self.code or 0) <= 499)
        return not handled

    # Error answers -------------------------------------------------------------------

    def error_message(self) -> str:
        if self.message:
            return self.message
        return _DEFAULT_MESSAGES.get(int(self.status or self.code or 500), "error")

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
    """The active faults; `pick` and `pick_task_faults` are atomic."""

    _slots: list[_Slot] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        if not isinstance(fault, Fault):
            raise InvalidInputError(f"inject() takes a Fault (e.g. Fault.status(503, \"create\")), not {type(fault).__name__}")
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
        return self._pick(lambda fault: fault.kind not in TASK_KINDS and fault.matches(endpoint))

    def pick_task_faults(self) -> dict[str, Fault]:
        """Called once per task actually created: kind -> the task fault of that kind it gets."""
        picked: dict[str, Fault] = {}
        for kind in TASK_KINDS:
            fault = self._pick(lambda f, kind=kind: f.kind == kind)
            if fault is not None:
                picked[kind] = fault
        return picked

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
