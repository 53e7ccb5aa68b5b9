"""One table of exit codes for every `framepack` command, so scripts can react.

0 done, 2 bad input or usage (nothing was sent), 3 API or network error, 4 the task
failed, 5 waiting timed out, 6 a create request's outcome is unknown, 130 interrupted.
"""

from __future__ import annotations

from .. import errors
from ..runs import RunStage

__all__ = [
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_API_ERROR",
    "EXIT_TASK_FAILED",
    "EXIT_TIMEOUT",
    "EXIT_SUBMISSION_UNKNOWN",
    "EXIT_INTERRUPTED",
    "exit_code_for",
    "exit_code_for_stage",
    "worst",
]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_API_ERROR = 3
EXIT_TASK_FAILED = 4
EXIT_TIMEOUT = 5
EXIT_SUBMISSION_UNKNOWN = 6
EXIT_INTERRUPTED = 130

_STAGE_EXIT = {
    RunStage.COMPLETED: EXIT_OK,
    RunStage.SUBMISSION_UNKNOWN: EXIT_SUBMISSION_UNKNOWN,
    RunStage.FAILED: EXIT_TASK_FAILED,
    RunStage.CANCELLED: EXIT_TASK_FAILED,
    RunStage.TIMED_OUT: EXIT_TIMEOUT,
}
#: When several runs went wrong, the code that matters most comes first (money first).
_PRECEDENCE = [EXIT_SUBMISSION_UNKNOWN, EXIT_API_ERROR, EXIT_TIMEOUT, EXIT_TASK_FAILED, EXIT_OK]


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error, most specific class first."""
    for kind, code in (
        (errors.InvalidInputError, EXIT_BAD_INPUT),
        (errors.SubmissionUnknownError, EXIT_SUBMISSION_UNKNOWN),
        (errors.TaskFailedError, EXIT_TASK_FAILED),
        (errors.TaskTimeoutError, EXIT_TIMEOUT),
    ):
        if isinstance(exc, kind):
            return code
    return EXIT_API_ERROR


def exit_code_for_stage(stage: RunStage) -> int:
    """The exit code for a run that ended in `stage`."""
    return _STAGE_EXIT.get(stage, EXIT_API_ERROR)


def worst(codes: list[int]) -> int:
    """The one code to report for several runs."""
    return min(codes, key=_PRECEDENCE.index, default=EXIT_OK)
