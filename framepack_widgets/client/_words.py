"""The few words of a message that depend on who reads it: Python code, or the command line.

A notebook user is told to call `wait(...)` or pass `timeout=`; a person at a terminal
never sees a Python call, but the option or variable that does the same. The client is
made for one audience (`Client(audience="cli")` in the `framepack` command) and every
message it builds takes these words from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError

__all__ = ["AUDIENCES", "Words", "words_for"]

AUDIENCES = ("python", "cli")


@dataclass(frozen=True)
class Words:
    """Advice phrased for one audience."""

    check_key: str  # after a 401
    check_base_url: str  # the address answered 404: it is not the API's
    no_key: str  # no key at all
    allow_http: str  # how to allow a clear-text base URL on purpose
    slow_request: str  # after a request timed out
    inline_images: str  # uploads refused (no paid plan) and the image too large to go inline
    wait_again_text: str  # the wait gave up; "{task_id}" is replaced
    follow_later_text: str  # completed without a video URL; "{task_id}" is replaced

    def wait_again(self, task_id: str) -> str:
        return self.wait_again_text.format(task_id=task_id, task_id_repr=repr(task_id))

    def follow_later(self, task_id: str) -> str:
        return self.follow_later_text.format(task_id=task_id, task_id_repr=repr(task_id))


_PYTHON = Words(
    check_key="Check PIAPI_API_KEY or the api_key= you passed.",
    check_base_url="Check base_url (or PIAPI_BASE_URL).",
    no_key=(
        "No PiAPI key: pass api_key= or set PIAPI_API_KEY "
        "(or use the offline simulator: framepack_widgets.simulator.Simulator). No request was sent."
    ),
    allow_http="pass allow_http=True or set PIAPI_ALLOW_HTTP=1",
    slow_request="A larger timeout= may help.",
    inline_images="use image_encoding='base64' instead",
    wait_again_text="It may still finish: call wait({task_id_repr}) again later, or pass a longer timeout=.",
    follow_later_text="Follow it again later (wait({task_id_repr}))",
)

_CLI = Words(
    check_key="Check PIAPI_API_KEY.",
    check_base_url="Check PIAPI_BASE_URL.",
    no_key="No PiAPI key: set PIAPI_API_KEY (or unset it to use the offline simulator). No request was sent.",
    allow_http="set PIAPI_ALLOW_HTTP=1",
    slow_request="The network or the API may be slow: try again in a minute.",
    inline_images="send a smaller image instead (it then goes inline, as base64)",
    wait_again_text=(
        "It may still finish (and be charged): look for task {task_id} in PiAPI's dashboard; "
        "next time give a longer --timeout."
    ),
    follow_later_text="Look for task {task_id} in PiAPI's dashboard later",
)


def words_for(audience: str) -> Words:
    """The words for "python" (the default) or "cli"; anything else is refused."""
    if audience == "python":
        return _PYTHON
    if audience == "cli":
        return _CLI
    raise InvalidInputError(f"audience must be one of {', '.join(map(repr, AUDIENCES))}, not {audience!r}.")
