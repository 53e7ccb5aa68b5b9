"""What an answer says: PiAPI's envelope read defensively, and each call's value taken out of it.

Pure functions on parsed JSON: the envelope's `code` (200, 0, "success" are success), the
API's own words for an error, whether an error answer still names a task, and the value of
each call (a `Task`, the account info, an uploaded file's URL). A `ValueError` from a parser
means the answer is malformed; the decisions (`_decisions`) say what that costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import InvalidInputError
from ..task import Task, parse_task

__all__ = [
    "SUCCESS_CODES",
    "api_message",
    "envelope_code",
    "http_like",
    "parse_account",
    "parse_optional_task",
    "parse_task_body",
    "parse_task_list",
    "parse_upload",
    "task_in",
]

SUCCESS_CODES = (200, 0)
_SUCCESS_WORDS = ("success", "ok")


def api_message(body: Any, response: httpx.Response | None = None) -> str:
    """The API's words for what went wrong (its `message`, `error` or `detail`), else the
    start of the answer's text."""
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, Mapping):
                value = value.get("message") or value.get("raw_message")
            if isinstance(value, str) and value.strip():
                return value.strip()
    if response is not None:
        try:
            text = response.text.strip()
        except Exception:
            text = ""
        if text:
            return " ".join(text.split())[:200]
    return "no message"


def envelope_code(body: Mapping[str, Any]) -> int | None:
    """The envelope's `code` as a number (200 for "success"/"ok"); None when it has none."""
    code = body.get("code")
    if code is None or isinstance(code, bool):
        return None
    if isinstance(code, str) and code.strip().lower() in _SUCCESS_WORDS:
        return 200
    try:
        return int(code)
    except (TypeError, ValueError):
        return -1


def http_like(code: int) -> bool:
    """Whether an envelope's code reads as an HTTP error status (PiAPI also sends its own numbers)."""
    return 400 <= code <= 599


def task_in(body: Any) -> Task | None:
    """The task an answer names, if it names one usable (whatever its code says)."""
    if not isinstance(body, Mapping):
        return None
    try:
        return parse_task(body)
    except ValueError:
        return None


def parse_task_body(body: Any) -> Task:
    """A create or get answer's task; ValueError (malformed) when it has none or its id is unusable."""
    try:
        return parse_task(body)
    except InvalidInputError as exc:  # the answer's fault, not the caller's: a malformed answer
        raise ValueError(str(exc)) from None


def parse_task_list(body: Any) -> list[Task]:
    """A list of tasks in the envelope's `data` (the classroom service's gallery); ValueError
    when there is no list, or one of its tasks is unusable."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise ValueError("the answer has no list of tasks in data")
    return [parse_task_body(item) for item in data]


def parse_optional_task(body: Any) -> Task | None:
    """A cancel answer: the task when it carries one (its status says whether it was cancelled)."""
    return task_in(body)


def parse_account(body: Any) -> dict:
    """The account's figures: the envelope's `data`, or the answer itself when they sit at the top."""
    data = body.get("data")
    return dict(data) if isinstance(data, Mapping) else dict(body)


def parse_upload(body: Any) -> str:
    """The uploaded file's URL: `data.url`, or a top-level `url` (what PiAPI's CLI also reads)."""
    data = body.get("data")
    url = data.get("url") if isinstance(data, Mapping) else body.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValueError("the upload answer has no data.url")
    return url
