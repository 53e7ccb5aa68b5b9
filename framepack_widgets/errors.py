"""The errors framepack_widgets raises: `FramepackError` and those shared by its layers.

The hierarchy mirrors what a caller wants to decide: fix the input, fix the key,
wait and retry, or check the dashboard before paying again. Messages say what went
wrong and what to do next; none of them ever contains the API key. Errors of one part
live beside it (`StoreError`, `RunNotAttachedError`, `CostLimitError`, ...) and derive from
`FramepackError` too (a test imports every module and checks). Where code used to raise a
built-in exception, the error keeps it as a second base, so `except ValueError` (or
`TypeError`, `RuntimeError`, `KeyError`, `FileNotFoundError`, `ImportError`) still catches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import httpx

#: A `framepack_widgets.task.Task` snapshot. Typed loosely here because `task` raises these
#: errors itself, and no module imports one that imports it back (not even for the type checker).
TaskSnapshot = Any

__all__ = [
    "FramepackError",
    "InvalidInputError",
    "BudgetExceededError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PaymentRequiredError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "SubmissionUnknownError",
    "TaskFailedError",
    "TaskTimeoutError",
    "DownloadError",
    "UsageError",
    "NoEventLoopError",
    "RunNotFoundError",
    "FileMissingError",
    "MissingDependencyError",
]


class FramepackError(Exception):
    """Base class: `except FramepackError` catches everything this package raises."""


class InvalidInputError(FramepackError, ValueError):
    """The request was refused before anything was sent. Nothing was charged."""


class BudgetExceededError(InvalidInputError):
    """A run (or sweep, timeline, queued runs) would pass the day's budget, so nothing was sent.

    `budget_usd` is the day's budget, `left_usd` what is left of it today, `cost_usd` what was
    asked for; `spent_usd` is today's spend so far (runs charged, and runs on their way). Like
    any refused input (it is an `InvalidInputError`), nothing was charged.
    """

    def __init__(self, message: str, *, budget_usd: float, spent_usd: float, left_usd: float, cost_usd: float) -> None:
        super().__init__(message)
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.left_usd = left_usd
        self.cost_usd = cost_usd


class APIError(FramepackError):
    """The API (or the network in front of it) did not do what was asked."""

    def __init__(self, message: str, *, request: "httpx.Request | None" = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIStatusError(APIError):
    """The API answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        request: "httpx.Request | None" = None,
        response: "httpx.Response | None" = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.body = body
        self.response = response


class BadRequestError(APIStatusError):
    """400: the API refused the request body."""


class AuthenticationError(APIStatusError):
    """401/403: the key is missing, wrong, or the plan does not allow this."""


class PaymentRequiredError(APIStatusError):
    """402: the account's balance is too low for this; top up the PiAPI account, then retry. In a
    class (the classroom service), the student's class budget is used up: the teacher decides."""


class NotFoundError(APIStatusError):
    """404: no such task (wrong id, or it has expired)."""


class RateLimitError(APIStatusError):
    """429: too many requests; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the API failed; usually worth trying again later."""


class APIConnectionError(APIError):
    """The request did not get an HTTP answer (DNS, refused, reset, TLS...)."""


class APITimeoutError(APIConnectionError):
    """The request timed out before an answer arrived."""


class SubmissionUnknownError(APIError):
    """A create request may or may not have reached PiAPI, so it was not sent again.

    Retrying blindly could start (and bill) a second task. Check the PiAPI dashboard's
    task list before submitting again. `request` is the request that was sent.
    """


class TaskFailedError(FramepackError):
    """The task ended as failed (or cancelled); `task` is its last snapshot."""

    def __init__(self, message: str, *, task: TaskSnapshot) -> None:
        super().__init__(message)
        self.task = task


class TaskTimeoutError(FramepackError):
    """Waiting gave up; the task may still finish. Re-attach later with its id."""

    def __init__(self, message: str, *, task_id: str, last_task: TaskSnapshot | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.last_task = last_task


class DownloadError(FramepackError):
    """The finished video could not be fetched or is not a video."""


class UsageError(FramepackError, TypeError):
    """A call the package cannot take as made (a wrong kind of argument or object); the
    message names the call that works."""


class NoEventLoopError(FramepackError, RuntimeError):
    """Runs are driven on the running asyncio loop and none is running here; the message
    says where to call from (a notebook cell, or inside `asyncio.run(...)`)."""


class RunNotFoundError(FramepackError, KeyError):
    """No run with that id in the run store (or a widget's history)."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class FileMissingError(FramepackError, FileNotFoundError):
    """A file the run store should hold is not there (a cleaned folder, a pruned video, a
    run not finished yet); the message says how to get it back."""


class MissingDependencyError(FramepackError, ImportError):
    """An optional package this feature needs is not installed; the message names the pip command."""
