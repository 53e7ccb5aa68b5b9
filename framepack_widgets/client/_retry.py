"""Which failures deserve another try, and how long to wait before it.

The classification of httpx's own exceptions here is what the money rule rests on: a
create is sent again only after `never_connected` (the connection never opened, or no
pooled connection was ever handed to it), since only then can it have created nothing.
`RequestSpec` is one logical call (however often it is sent) and `Step` the one answer
every decision gives the I/O shells: a value, an error, or a retry after some seconds.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import httpx

from ..errors import APIConnectionError, APIError, APIStatusError, RateLimitError, ServerError

__all__ = [
    "MalformedResponseError",
    "RETRYABLE_CREATE_STATUS",
    "RequestSpec",
    "Step",
    "TRANSIENT_TRANSPORT",
    "backoff_delay",
    "is_transient",
    "never_connected",
    "never_sent",
    "parse_retry_after",
    "read_retryable_status",
]

RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 8.0
RETRY_AFTER_CAP = 60.0

#: A create answered with these certainly created nothing: safe to send again.
RETRYABLE_CREATE_STATUS = frozenset({429, 503})
_RETRYABLE_READ_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Transport failures worth another try for a reading call (a GET is safe to repeat).
TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RequestSpec:
    """One logical call, independent of how many times it is sent."""

    method: str
    url: str
    what: str  # for messages: "create the task", "get task 123"
    json: Any = None
    creates: bool = False  # money rule: retry only when no task can have been created
    authenticated: bool = True
    task_id: str | None = None
    upload: bool = False
    parse: Callable[[Any], Any] | None = None  # body -> value; ValueError means malformed
    #: A create sent with this Idempotency-Key to a server that honours it (the classroom
    #: service): the same create may then be sent again with the same key.
    idempotency_key: str | None = None


@dataclass
class Step:
    """What the shell should do next after one attempt.

    An error is raised without its httpx cause: that exception's request holds the API key in
    its headers, and a chained traceback (shown in full by `%xmode Verbose`, saved in the
    notebook) would print the transport's frames with those raw header bytes. The message
    says what the cause was.
    """

    value: Any = None
    error: BaseException | None = None
    retry_in: float | None = None
    #: This attempt may have reached the server (a keyed create retried after it is unknown
    #: until the server answers for the key).
    reached: bool = False


class MalformedResponseError(APIError):
    """The API answered 2xx but the body was not the JSON envelope expected.

    Usually a proxy or a transient fault; worth polling again (internal; an APIError).
    """


def read_retryable_status(status: int) -> bool:
    """HTTP statuses after which a reading call (GET, download) is tried again."""
    return status in _RETRYABLE_READ_STATUS or (status >= 500 and status not in (501, 505))


def never_connected(exc: BaseException) -> bool:
    """The request certainly never reached a server: safe to send a create again.

    httpx raises ConnectError/ConnectTimeout only while opening a connection, and
    PoolTimeout only while waiting for one, so no byte of the request has left.
    """
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def never_sent(exc: BaseException) -> bool:
    """Nothing went out (also when the request was refused before sending), retried or not."""
    return never_connected(exc) or isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError))


def is_transient(exc: BaseException) -> bool:
    """Errors a wait loop rides out (it keeps polling until its deadline)."""
    if isinstance(exc, (APIConnectionError, RateLimitError, ServerError, MalformedResponseError)):
        return True
    return isinstance(exc, APIStatusError) and exc.status_code == 408


def parse_retry_after(
    headers: "Mapping[str, str] | httpx.Headers | None",
    *,
    now: float | None = None,
    cap: float = RETRY_AFTER_CAP,
) -> float | None:
    """Seconds the server asked us to wait: `Retry-After` as seconds or an HTTP date
    (also `retry-after-ms`), clamped to [0, cap]. None when absent or unreadable."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    seconds: float | None = None
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            seconds = float(raw_ms) / 1000.0
        except ValueError:
            seconds = None
    raw = lowered.get("retry-after")
    if seconds is None and raw:
        raw = raw.strip()
        try:
            seconds = float(raw)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None or math.isnan(seconds):
        return None
    return max(0.0, min(cap, seconds))


def backoff_delay(
    attempt: int,
    *,
    rng: random.Random | None = None,
    base: float = RETRY_BASE_DELAY,
    cap: float = RETRY_MAX_DELAY,
) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt)).

    Full jitter spreads many clients (or 100 tasks in one AsyncClient) apart after a
    shared failure instead of having them retry in lock-step.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)
