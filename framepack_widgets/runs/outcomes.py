"""What a person can do next, for each way a run can end badly: the hints kept on the run.

Nothing here decides anything; the `Runner` picks the hint that fits what happened.
"""

from __future__ import annotations

from ..errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = ["HINT_SUBMISSION_UNKNOWN", "HINT_TIMED_OUT", "HINT_INTERRUPTED_SUBMIT", "hint_for"]

HINT_SUBMISSION_UNKNOWN = (
    "The create request may have reached PiAPI and started a task, but no answer arrived. "
    "Nothing was resent. Check your PiAPI task list before trying again: if the task is "
    "there, runner.attach(run, task_id) follows it; if not, run.rerun() sends it again."
)
HINT_TIMED_OUT = (
    "Waiting gave up, but the task may still finish at PiAPI. runner.resume() (or "
    "runner.reattach(run)) follows it again by task id without paying twice."
)
HINT_INTERRUPTED_SUBMIT = (
    "The kernel stopped while the create request was in flight, so it may have started a "
    "task. Nothing was resent. " + HINT_SUBMISSION_UNKNOWN.split("Nothing was resent. ", 1)[1]
)


def hint_for(exc: BaseException, *, task_id: str | None) -> str:
    follow = " The task may still be running: runner.reattach(run) follows it again." if task_id else ""
    prefix = "Nothing was charged: PiAPI refused the request before creating a task. " if task_id is None else ""
    if isinstance(exc, AuthenticationError):
        return prefix + "Check the API key (PIAPI_API_KEY) and that your plan allows Framepack."
    if isinstance(exc, RateLimitError):
        return prefix + "PiAPI is rate limiting: wait a minute, then try again (fewer runs at once helps)."
    if isinstance(exc, BadRequestError):
        return prefix + "Check the prompt, duration and images, then try again."
    if isinstance(exc, NotFoundError):
        if task_id is None:  # the create itself: the address, not a task, is unknown
            return prefix + "PiAPI does not know this address: check PIAPI_BASE_URL (or base_url=)."
        return "PiAPI no longer knows this task id (it may have expired)."
    if isinstance(exc, ServerError):
        return prefix + "PiAPI had a server error; try again later." + follow
    if isinstance(exc, APIConnectionError):
        return prefix + "Check the network connection." + follow
    if isinstance(exc, DownloadError):
        return (
            "The task finished (and was billed) but its video could not be downloaded. "
            "runner.reattach(run) tries again; PiAPI's result links expire after a while."
        )
    return prefix + "See the error message." + follow
