"""Everything `Client` and `AsyncClient` share, with no I/O in it.

`client.py` holds two thin shells (one on `httpx.Client`, one on `httpx.AsyncClient`) that
only send requests, sleep and read clocks. Every decision lives here, once: settings and
environment, request building, envelope parsing, status → error mapping, which failures
are retried (and how long to wait), how often to poll a running task, and keeping the
API key out of every message. Keeping it sans-I/O is what lets the sync client be a real
`httpx.Client` (it works inside Jupyter's running event loop) without duplicating rules.

The money rule (DESIGN.md) is enforced in `BaseClient._after_exception` and
`BaseClient._after_response`: a create request is retried only when it certainly did not
create a task; otherwise `SubmissionUnknownError` is raised and nothing is resent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TaskFailedError,
    TaskTimeoutError,
)
from .task import Task, TaskStatus, parse_task

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_UPLOAD_URL",
    "DEFAULT_WAIT_TIMEOUT",
    "MODEL",
    "TASK_TYPE",
    "AdaptivePoll",
    "BaseClient",
    "ExponentialPoll",
    "FixedPoll",
    "MalformedResponseError",
    "PollStrategy",
    "Secret",
    "Settings",
    "backoff_delay",
    "is_loopback_url",
    "is_video_header",
    "parse_retry_after",
    "redact",
    "resolve_settings",
]

logger = logging.getLogger("framepack_widgets")

DEFAULT_BASE_URL = "https://api.piapi.ai"
DEFAULT_UPLOAD_URL = "https://upload.theapi.app/api/ephemeral_resource"
MODEL = "Qubico/framepack"
TASK_TYPE = "img2video"
API_KEY_HEADER = "x-api-key"

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_WAIT_TIMEOUT = 3600.0  # `timeout=None` waits at most an hour, then says how to re-attach
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 8.0
RETRY_AFTER_CAP = 60.0
USER_AGENT = "framepack-widgets"

NO_KEY_MESSAGE = (
    "No PiAPI key: pass api_key= or set PIAPI_API_KEY "
    "(or use the offline simulator: framepack_widgets.simulator.Simulator). No request was sent."
)

_SUCCESS_CODES = (200, 0)
_PIAPI_HOST_SUFFIXES = ("piapi.ai", "theapi.app")


# --------------------------------------------------------------------------- secrets


class Secret:
    """Holds the API key so that no repr, log line or traceback-with-locals shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling a client must not write the key somewhere
        raise TypeError("the API key is not picklable")


def redact(text: str, *secrets: "str | Secret | None") -> str:
    """Replace every occurrence of each secret (and its obvious variants) with `***`."""
    for secret in secrets:
        value = secret.get() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, "***")
            quoted = quote(value, safe="")
            if quoted != value:
                text = text.replace(quoted, "***")
    return text


def _redact_value(value: Any, secret: "Secret | None") -> Any:
    """Deep copy of a JSON body with the key replaced, only when it actually occurs."""
    if secret is None or not secret.get():
        return value
    try:
        if secret.get() not in json.dumps(value, default=str):
            return value
    except (TypeError, ValueError):
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {k: _redact_value(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, secret) for v in value]
    return value


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What a client was configured with, after the environment was consulted."""

    api_key: Secret | None
    base_url: str
    upload_url: str
    timeout: httpx.Timeout
    max_retries: int


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def is_loopback_url(url: str) -> bool:
    """True for http(s)://127.x / localhost / [::1]: the offline simulator, not PiAPI."""
    try:
        host = httpx.URL(url).host
    except Exception:
        return False
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_piapi(url: str) -> bool:
    host = (httpx.URL(url).host or "").lower()
    return any(host == s or host.endswith("." + s) for s in _PIAPI_HOST_SUFFIXES)


def _make_timeout(timeout: "float | httpx.Timeout | None") -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    return httpx.Timeout(float(timeout), connect=CONNECT_TIMEOUT)


def _check_url(url: str, what: str) -> str:
    url = str(url).strip().rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInputError(f"{what} must start with http:// or https://, not {url!r}.")
    try:
        httpx.URL(url)
    except Exception as exc:
        raise InvalidInputError(f"{what} is not a valid URL ({url!r}): {exc}") from None
    return url


def resolve_settings(
    api_key: str | None = None,
    *,
    base_url: str | None = None,
    timeout: "float | httpx.Timeout | None" = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    upload_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Arguments win; then PIAPI_API_KEY / PIAPI_BASE_URL; then PiAPI's public defaults."""
    environ = os.environ if environ is None else environ
    key = api_key if api_key is not None else _env(environ, "PIAPI_API_KEY")
    if key is not None and not isinstance(key, str):
        raise InvalidInputError("api_key must be a string.")
    key = key.strip() if key else None
    base = _check_url(base_url or _env(environ, "PIAPI_BASE_URL") or DEFAULT_BASE_URL, "base_url")
    if upload_url:
        upload = _check_url(upload_url, "upload_url")
    elif _is_piapi(base):
        upload = DEFAULT_UPLOAD_URL
    else:
        upload = f"{base}/api/ephemeral_resource"
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInputError(f"max_retries must be a whole number >= 0, not {max_retries!r}.")
    return Settings(
        api_key=Secret(key) if key else None,
        base_url=base,
        upload_url=upload,
        timeout=_make_timeout(timeout),
        max_retries=max_retries,
    )


# --------------------------------------------------------------------------- retry timing


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
            import email.utils

            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    from datetime import timezone

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


# --------------------------------------------------------------------------- polling


class PollStrategy:
    """How long to sleep before the next GET while waiting for a task.

    `delay(elapsed, attempt, task)`: `elapsed` is seconds since the wait began, `attempt`
    how many delays this wait has already asked for (0 for the first sleep), `task` the
    latest snapshot (None if none was seen yet). Stateful strategies return a fresh copy
    from `session()`, which the wait loop calls once per wait, so one strategy object can
    serve many concurrent waits. A strategy whose `session` accepts `expected_seconds`
    (or **kwargs) also receives wait()'s expected-duration hint that way (see `poll_session`).
    """

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        raise NotImplementedError

    def session(self) -> "PollStrategy":
        return self


@dataclass(frozen=True)
class FixedPoll(PollStrategy):
    """The same interval every time (a reference point for the benchmark)."""

    interval: float = 1.0

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return self.interval


@dataclass(frozen=True)
class ExponentialPoll(PollStrategy):
    """initial * factor**attempt, capped at maximum (a reference point for the benchmark)."""

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 30.0

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt))


@dataclass
class AdaptivePoll(PollStrategy):
    """The default: few requests, yet the finished video is seen about a second after it is ready.

    - pending (or not yet seen): start at `first` seconds, grow by `pending_growth` up to `pending_max`.
    - processing with a percent: fit progress against time (least squares over this wait's
      observations) to estimate the time left; far from the end sleep `fraction` of it
      (at most `max_delay`), and once the estimate is trustworthy (the remaining time is no
      longer than the span already observed) sleep until just after the expected end
      (+`margin`). Past the expected end, poll quickly (`min_delay`), backing off gently
      to `overdue_max` in case the last stretch (encoding, upload) is slow.
    - processing without a percent: grow from `first` by `growth` up to `no_percent_max`.
    - with an expected duration (`session(expected_seconds=...)`, e.g. learned from earlier
      runs) and no percent (also while pending): the expectation is taken as uncertain by
      ±`hint_spread` (20 %). Before that window opens, sleep `hint_fraction` of the time
      left until it does (at most `hint_max`); inside it and until `hint_margin` seconds
      past its end, poll every `hint_interval`; after that grow by `hint_growth` up to
      `hint_overdue_max`. A bad estimate so costs a few GETs or a few seconds, never a storm.
      A reported percent always wins over the hint.
    """

    first: float = 1.0
    pending_growth: float = 1.5
    pending_max: float = 5.0
    growth: float = 1.3
    no_percent_max: float = 5.0
    fraction: float = 0.6
    margin: float = 0.3
    min_delay: float = 0.5
    max_delay: float = 15.0
    probe_max: float = 6.0
    overdue_max: float = 2.5
    hint_fraction: float = 0.6
    hint_spread: float = 0.2
    hint_interval: float = 1.5
    hint_margin: float = 2.0
    hint_growth: float = 1.2
    hint_max: float = 10.0
    hint_overdue_max: float = 5.0
    _expected: float | None = field(default=None, repr=False, compare=False)
    _last_pending: float | None = field(default=None, repr=False, compare=False)
    _points: list[tuple[float, float]] = field(default_factory=list, repr=False, compare=False)
    _pending_polls: int = field(default=0, repr=False, compare=False)
    _blind_polls: int = field(default=0, repr=False, compare=False)
    _overdue_polls: int = field(default=0, repr=False, compare=False)
    _late_polls: int = field(default=0, repr=False, compare=False)

    def session(self, expected_seconds: float | None = None) -> "AdaptivePoll":
        """A fresh copy for one wait; `expected_seconds`: when the task is expected to end,
        in seconds from the start of the wait (None: unknown)."""
        return AdaptivePoll(
            _expected=_clean_expected(expected_seconds),
            first=self.first,
            pending_growth=self.pending_growth,
            pending_max=self.pending_max,
            growth=self.growth,
            no_percent_max=self.no_percent_max,
            fraction=self.fraction,
            margin=self.margin,
            min_delay=self.min_delay,
            max_delay=self.max_delay,
            probe_max=self.probe_max,
            overdue_max=self.overdue_max,
            hint_fraction=self.hint_fraction,
            hint_spread=self.hint_spread,
            hint_interval=self.hint_interval,
            hint_margin=self.hint_margin,
            hint_growth=self.hint_growth,
            hint_max=self.hint_max,
            hint_overdue_max=self.hint_overdue_max,
        )

    def _clamp(self, value: float, high: float | None = None) -> float:
        return max(self.min_delay, min(self.max_delay if high is None else high, value))

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        status = task.status if task is not None else None
        if status not in (TaskStatus.PROCESSING, TaskStatus.RUNNING):
            if status is None or not status.is_terminal:
                self._last_pending = elapsed
            if self._expected is not None:
                return self._hinted(elapsed)
            self._pending_polls += 1
            d = self.first * self.pending_growth ** (self._pending_polls - 1)
            return self._clamp(d, self.pending_max)
        percent = task.percent if task is not None else None
        if percent is None:
            return self._blind(elapsed)
        if percent < 100.0 and float(percent).is_integer():
            percent += 0.5  # whole percents are usually truncated: the true value is on average .5 higher
        if not self._points or self._points[-1] != (elapsed, percent):
            self._points.append((elapsed, percent))
        remaining, trusted = self._estimate(elapsed)
        if remaining is None:
            return self._blind(elapsed)
        if remaining <= 0:
            self._overdue_polls += 1
            return self._clamp(self.min_delay * 1.5 ** (self._overdue_polls - 1), self.overdue_max)
        self._overdue_polls = 0
        if trusted:
            return self._clamp(remaining + self.margin)
        if len(self._points) == 1:
            return self._clamp(self.fraction * remaining, self.probe_max)
        return self._clamp(self.fraction * remaining)

    def _hinted(self, elapsed: float) -> float:
        """No percent, but an expected end: few GETs early, dense around the end, then gentle growth."""
        expected = self._expected
        assert expected is not None
        opens = expected * (1.0 - self.hint_spread)
        closes = expected * (1.0 + self.hint_spread) + self.hint_margin
        if elapsed < opens:
            left = opens - elapsed
            step = self.hint_fraction * left
            if left - step < 2 * self.hint_interval:  # nearly there: go straight to the window
                step = left
            return self._clamp(step, self.hint_max)
        if elapsed < closes:
            return self._clamp(self.hint_interval)
        self._late_polls += 1
        grown = self.hint_interval * self.hint_growth ** self._late_polls
        return self._clamp(grown, max(self.hint_interval, self.hint_overdue_max))

    def _blind(self, elapsed: float) -> float:
        if self._expected is not None:
            return self._hinted(elapsed)
        self._blind_polls += 1
        return self._clamp(self.first * self.growth ** self._blind_polls, self.no_percent_max)

    def _estimate(self, now: float) -> tuple[float | None, bool]:
        """(seconds left, whether to trust it enough to aim straight at the end)."""
        points = self._points
        t_last, p_last = points[-1]
        if p_last >= 100.0:
            return 0.0, True
        if len(points) >= 2:
            n = len(points)
            mean_t = sum(t for t, _ in points) / n
            mean_p = sum(p for _, p in points) / n
            var_t = sum((t - mean_t) ** 2 for t, _ in points)
            if var_t > 0:
                rate = sum((t - mean_t) * (p - mean_p) for t, p in points) / var_t
                if rate > 0:
                    fitted_now = mean_p + rate * (now - mean_t)
                    remaining = (100.0 - fitted_now) / rate
                    span = points[-1][0] - points[0][0]
                    return remaining, remaining <= span
        # One point: processing began after the last pending poll (if we saw one), so
        # p / (now - last_pending) is a lower bound on the rate: an upper bound on time left.
        if p_last > 0 and self._last_pending is not None and t_last > self._last_pending:
            rate = p_last / (t_last - self._last_pending)
            return (100.0 - p_last) / rate - (now - t_last), False
        return None, False


def _clean_expected(expected_seconds: "float | None") -> float | None:
    """A usable expected duration (>= 0 s), or None when absent or not a finite number."""
    if expected_seconds is None or isinstance(expected_seconds, bool):
        return None
    try:
        value = float(expected_seconds)
    except (TypeError, ValueError):
        return None
    return max(0.0, value) if math.isfinite(value) else None


def check_expected_seconds(expected_seconds: "float | None") -> float | None:
    """Validate a wait()'s `expected_seconds` hint: a number (NaN/inf are ignored, negatives mean 0) or None."""
    if expected_seconds is not None and (
        isinstance(expected_seconds, bool) or not isinstance(expected_seconds, (int, float))
    ):
        raise InvalidInputError(f"expected_seconds must be a number of seconds (or None), not {expected_seconds!r}.")
    return _clean_expected(expected_seconds)


def poll_session(poll: PollStrategy, expected_seconds: "float | None" = None) -> PollStrategy:
    """`poll.session(expected_seconds=...)` when the strategy accepts the hint, else `poll.session()`
    (custom strategies written before the hint existed keep working; plain objects are used as is)."""
    session = getattr(poll, "session", None)
    if session is None:
        return poll
    if expected_seconds is None:
        return session()
    import inspect

    try:
        params = inspect.signature(session).parameters.values()
    except (TypeError, ValueError):
        return session()
    if any(p.name == "expected_seconds" or p.kind is p.VAR_KEYWORD for p in params):
        return session(expected_seconds=expected_seconds)
    return session()


def default_poll() -> PollStrategy:
    return AdaptivePoll()


def coerce_poll(poll: "PollStrategy | float | None") -> PollStrategy:
    if poll is None:
        return default_poll()
    if isinstance(poll, (int, float)) and not isinstance(poll, bool):
        if poll <= 0:
            raise InvalidInputError(f"poll interval must be positive, not {poll!r}.")
        return FixedPoll(float(poll))
    if not callable(getattr(poll, "delay", None)):
        raise InvalidInputError("poll must be a PollStrategy (an object with delay(elapsed, attempt, task)).")
    return poll


# --------------------------------------------------------------------------- requests


class MalformedResponseError(APIError):
    """The API answered 2xx but the body was not the JSON envelope expected.

    Usually a proxy or a transient fault; worth polling again (internal; an APIError).
    """


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

    @cached_property
    def http_url(self) -> httpx.URL:
        """Parsed once: a wait loop sends the same spec on every poll."""
        return httpx.URL(self.url)


@dataclass
class Step:
    """What the shell should do next after one attempt."""

    value: Any = None
    error: BaseException | None = None
    cause: BaseException | None = None
    retry_in: float | None = None


def _api_message(body: Any, response: httpx.Response | None = None) -> str:
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


def _envelope_code(body: Mapping[str, Any]) -> int | None:
    code = body.get("code")
    if code is None or isinstance(code, bool):
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return -1


def _safe_request(request: httpx.Request) -> httpx.Request:
    """A copy of the request without the API key, for errors that carry it."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != API_KEY_HEADER]
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = b""
    return httpx.Request(request.method, request.url, headers=headers, content=content)


def _safe_response(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    try:
        content = response.content
    except httpx.ResponseNotRead:
        content = b""
    return httpx.Response(response.status_code, headers=headers, content=content, request=request)


_RETRYABLE_READ_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_RETRYABLE_CREATE_STATUS = frozenset({429, 503})


def _read_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_READ_STATUS or (status >= 500 and status not in (501, 505))


_TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _never_connected(exc: BaseException) -> bool:
    """The request certainly never reached a server: safe to send a create again."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _never_sent(exc: BaseException) -> bool:
    return _never_connected(exc) or isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError))


def is_transient(exc: BaseException) -> bool:
    """Errors a wait loop rides out (it keeps polling until its deadline)."""
    if isinstance(exc, (APIConnectionError, RateLimitError, ServerError, MalformedResponseError)):
        return True
    return isinstance(exc, APIStatusError) and exc.status_code == 408


# --------------------------------------------------------------------------- inputs


def _validate_dict_input(value: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(value)
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("The input needs a non-empty 'prompt' string. Nothing was sent.")
    start = data.get("start_image")
    if not isinstance(start, str) or not start.strip():
        raise InvalidInputError(
            "The input needs 'start_image' (an http(s) URL or a base64 string). Nothing was sent. "
            "Tip: framepack_widgets.FramepackInput accepts paths, bytes, PIL images and arrays."
        )
    end = data.get("end_image")
    if end is not None and (not isinstance(end, str) or not end.strip()):
        raise InvalidInputError("'end_image' must be an http(s) URL or a base64 string when given.")
    if end is None:
        data.pop("end_image", None)
    duration = data.get("duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int) or not 10 <= duration <= 30:
            raise InvalidInputError(
                f"'duration' must be whole seconds from 10 to 30, not {duration!r}. Nothing was sent."
            )
    return data


@dataclass(frozen=True)
class UploadJob:
    """One image to send to the ephemeral-resource endpoint before the create request."""

    field: str  # "start_image" | "end_image"
    file_name: str
    data: bytes


_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def _upload_jobs(input_obj: Any) -> list[UploadJob]:
    jobs: list[UploadJob] = []
    for name in ("start_image", "end_image"):
        source = getattr(input_obj, name, None)
        if source is None or getattr(source, "data", None) is None:
            continue  # a URL passes through untouched
        file_name = getattr(source, "filename", None)
        if not isinstance(file_name, str) or not file_name:
            ext = _EXTENSIONS.get(getattr(source, "mime", None) or "", "jpg")
            digest = str(getattr(source, "sha256", "") or "")[:16] or name
            file_name = f"{digest}.{ext}"
        jobs.append(UploadJob(field=name, file_name=file_name, data=bytes(source.data)))
    return jobs


# --------------------------------------------------------------------------- waiting


class Waiter:
    """The wait loop's bookkeeping, shared by both shells (which do the GETs and sleeps)."""

    def __init__(
        self,
        task_or_id: "Task | str",
        *,
        timeout: float | None,
        poll: PollStrategy,
        clock: Callable[[], float],
        rng: random.Random,
        redact: Callable[[str], str] = lambda text: text,
        expected_seconds: float | None = None,
    ) -> None:
        self._redact = redact
        if isinstance(task_or_id, Task):
            self.task_id = task_or_id.task_id
            self.last: Task | None = task_or_id
        elif isinstance(task_or_id, str) and task_or_id.strip():
            self.task_id = task_or_id.strip()
            self.last = None
        else:
            raise InvalidInputError(f"wait() needs a Task or a task id string, not {task_or_id!r}.")
        if timeout is None:
            timeout = DEFAULT_WAIT_TIMEOUT
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidInputError(f"timeout must be a number of seconds >= 0, not {timeout!r}.")
        self.timeout = float(timeout)
        self.known_to_exist = self.last is not None
        self._clock = clock
        self._rng = rng
        self.started = clock()
        self.deadline = self.started + self.timeout
        # The hint (seconds from now until the task is expected to end) goes to the strategy's session.
        self.expected_seconds = check_expected_seconds(expected_seconds)
        self.poll = poll_session(poll, self.expected_seconds)
        self.gets = 0
        self.sleeps = 0
        self._errors = 0
        self._not_found = 0
        self._error_delay = 0.0
        self.last_error: BaseException | None = None

    def observe(self, task: Task) -> bool:
        """Record a fresh snapshot; True when on_update should hear about it."""
        self._errors = 0
        self._not_found = 0
        self._error_delay = 0.0
        self.last_error = None
        changed = task.changed_since(self.last)
        self.last = task
        return changed

    def on_error(self, exc: BaseException) -> None:
        """Ride out transient errors (and a task briefly not visible yet); re-raise the rest."""
        if isinstance(exc, NotFoundError) and self.known_to_exist and self._not_found < 3:
            self._not_found += 1
        elif not is_transient(exc):
            raise exc
        self.last_error = exc
        retry_after = getattr(exc, "retry_after", None)
        self._error_delay = (
            float(retry_after) if retry_after is not None else backoff_delay(self._errors, rng=self._rng)
        )
        self._errors += 1
        logger.debug("waiting for task %s: %s; polling on", self.task_id, type(exc).__name__)

    def next_delay(self) -> float:
        """Seconds to sleep before the next GET; raises TaskTimeoutError at the deadline."""
        now = self._clock()
        remaining = self.deadline - now
        if remaining <= 0:
            raise self.timeout_error()
        delay = float(self.poll.delay(now - self.started, self.sleeps, self.last))
        self.sleeps += 1
        if not delay >= 0:  # NaN or negative from a custom strategy
            delay = 0.0
        delay = max(delay, self._error_delay)
        return min(delay, remaining)

    def request_timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """Per-GET timeout that does not run (much) past the overall deadline."""
        remaining = max(0.5, self.deadline - self._clock())
        read = base.read
        if read is not None and read <= remaining:
            return base
        return httpx.Timeout(
            remaining,
            connect=min(remaining, base.connect or remaining),
            pool=min(remaining, base.pool or remaining),
        )

    def timeout_error(self) -> TaskTimeoutError:
        last = self.last
        state = f"last status {last.status}" if last else "no status seen yet"
        if last is not None and last.percent is not None:
            state += f" at {last.percent:.0f}%"
        extra = f" (last error: {type(self.last_error).__name__})" if self.last_error else ""
        return TaskTimeoutError(
            self._redact(f"Stopped waiting for task {self.task_id} after {self.timeout:.0f} s ({state}){extra}. "
            f"It may still finish: call wait({self.task_id!r}) again later, or pass a longer timeout=."),
            task_id=self.task_id,
            last_task=last,
        )

    def finish(self, task: Task) -> Task:
        if task.status is TaskStatus.COMPLETED:
            return task
        if task.status is TaskStatus.CANCELLED:
            message = f"Task {task.task_id} was cancelled" + (f": {task.error}." if task.error else ".")
        else:
            reason = task.error or "PiAPI gave no error message"
            message = f"Task {task.task_id} failed: {reason}. Check the prompt and images, then try again."
        raise TaskFailedError(self._redact(message), task=task)


# --------------------------------------------------------------------------- video files

_MP4_BOX = b"ftyp"
_WEBM_MAGIC = b"\x1a\x45\xdf\xa3"


def is_video_header(head: bytes) -> bool:
    """MP4/MOV ('ftyp' box at offset 4) or WebM/Matroska (EBML magic)."""
    return head[4:8] == _MP4_BOX or head[:4] == _WEBM_MAGIC


class AtomicVideoFile:
    """Writes into a temp file beside the destination, checks it is a video, then renames.

    A failed or refused download never leaves a partial file at the destination.
    """

    def __init__(self, dest: Path) -> None:
        import tempfile

        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        self.tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._head = b""
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, url: str) -> Path:
        try:
            if not is_video_header(self._head):
                preview = self._head[:12]
                raise DownloadError(
                    f"The file at {_short_url(url)} is not a video (it starts with {preview!r}, "
                    f"{self.size} bytes); nothing was saved. The link may have expired: "
                    "fetch the task again for a fresh URL."
                )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        return self.dest

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass


def _short_url(url: str) -> str:
    """Drop the query string (signed tokens) from URLs shown in messages."""
    return url.split("?", 1)[0]


# --------------------------------------------------------------------------- the base client


class BaseClient:
    """Configuration and every decision; subclasses add an httpx client, a clock and a sleep."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: "float | httpx.Timeout | None" = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        upload_url: str | None = None,
        poll: "PollStrategy | float | None" = None,
    ) -> None:
        self._settings = resolve_settings(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url
        )
        self.poll: PollStrategy = coerce_poll(poll)
        self._random = random.Random()

    # -- public, read-only configuration
    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def upload_url(self) -> str:
        return self._settings.upload_url

    @property
    def max_retries(self) -> int:
        return self._settings.max_retries

    @property
    def timeout(self) -> httpx.Timeout:
        return self._settings.timeout

    @property
    def is_simulator(self) -> bool:
        """True when talking to a loopback server (the offline simulator), not PiAPI."""
        return is_loopback_url(self._settings.base_url)

    @property
    def has_api_key(self) -> bool:
        return self._settings.api_key is not None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, simulator={self.is_simulator}, "
            f"api_key={'set' if self.has_api_key else 'missing'})"
        )

    # -- text hygiene
    def _redact(self, text: str) -> str:
        return redact(text, self._settings.api_key)

    # -- request specs
    def _url(self, path: str) -> str:
        return f"{self._settings.base_url}{path}"

    @staticmethod
    def _task_id(task_id: "Task | str") -> str:
        if isinstance(task_id, Task):
            return task_id.task_id
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidInputError(f"A task id must be a non-empty string, not {task_id!r}.")
        return task_id.strip()

    def _upload_jobs(self, input_obj: Any) -> list[UploadJob]:
        """Images to send to the upload endpoint first (only in image_encoding="upload" mode).

        Also checks the input's type, so nothing is sent for something unusable.
        """
        if hasattr(input_obj, "request_input"):
            if getattr(input_obj, "image_encoding", "base64") == "upload":
                return _upload_jobs(input_obj)
            return []
        if isinstance(input_obj, Mapping):
            return []
        raise InvalidInputError(
            f"create_task() needs a FramepackInput or a dict for the request's input, not "
            f"{type(input_obj).__name__}. Nothing was sent."
        )

    def _create_payload(self, input_obj: Any, uploaded: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The create body's `input` object.

        `input_obj` is a FramepackInput (anything with `request_input()`), or a plain dict
        that is the request's `input` object itself (prompt, start_image as URL or base64,
        optional end_image, negative_prompt, duration), which is checked only minimally.
        `uploaded` maps start_image/end_image to URLs returned by the upload endpoint.
        """
        if hasattr(input_obj, "request_input"):
            if not uploaded:
                return dict(input_obj.request_input())
            try:
                return dict(input_obj.request_input(uploaded=dict(uploaded)))
            except TypeError:  # an input object without `uploaded=`: encode, then swap in the URLs
                payload = dict(input_obj.request_input(encoding="base64"))
                payload.update(uploaded)
                return payload
        if isinstance(input_obj, Mapping):
            return _validate_dict_input(input_obj)
        self._upload_jobs(input_obj)  # raises the InvalidInputError
        raise AssertionError("unreachable")

    def _create_body(self, payload: Mapping[str, Any]) -> dict:
        return {
            "model": MODEL,
            "task_type": TASK_TYPE,
            "input": dict(payload),
            "config": {"service_mode": "public"},
        }

    def _create_spec(self, body: dict) -> RequestSpec:
        return RequestSpec(
            "POST", self._url("/api/v1/task"), "create the task", json=body, creates=True, parse=self._parse_task_body
        )

    def _get_spec(self, task_id: str) -> RequestSpec:
        return RequestSpec(
            "GET", self._url(f"/api/v1/task/{quote(task_id, safe='')}"), f"get task {task_id}",
            task_id=task_id, parse=self._parse_task_body,
        )

    def _cancel_spec(self, task_id: str) -> RequestSpec:
        return RequestSpec(
            "DELETE", self._url(f"/api/v1/task/{quote(task_id, safe='')}"), f"cancel task {task_id}",
            task_id=task_id, parse=self._parse_optional_task,
        )

    def _account_spec(self) -> RequestSpec:
        return RequestSpec("GET", self._url("/account/info"), "read the account info", parse=self._parse_account)

    def _upload_spec(self, job: UploadJob) -> RequestSpec:
        import base64

        return RequestSpec(
            "POST", self._settings.upload_url, f"upload the {job.field.replace('_', ' ')}",
            json={"file_name": job.file_name, "file_data": base64.b64encode(job.data).decode("ascii")},
            upload=True, parse=self._parse_upload,
        )

    def _headers(self, spec: RequestSpec) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        if spec.authenticated:
            key = self._settings.api_key
            if key is None:
                raise AuthenticationError(NO_KEY_MESSAGE, status_code=401)
            headers[API_KEY_HEADER] = key.get()
        return headers

    def _timeout_for(self, override: httpx.Timeout | None) -> httpx.Timeout:
        return override or self._settings.timeout

    # -- body parsing (ValueError = malformed)
    def _check_envelope(self, body: Any, spec: RequestSpec) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            raise ValueError("the response is not a JSON object")
        code = _envelope_code(body)
        if code is not None and code not in _SUCCESS_CODES:
            message = _api_message(body)
            raise APIError(
                self._redact(
                    f"{self._service} could not {spec.what}: {message} (code {code}). "
                    "Check the request; if it persists, try again later."
                )
            )
        return body

    def _parse_task_body(self, body: Any) -> Task:
        return parse_task(body)

    def _parse_optional_task(self, body: Any) -> Task | None:
        try:
            return parse_task(body)
        except ValueError:
            return None

    def _parse_account(self, body: Any) -> dict:
        data = body.get("data")
        return dict(data) if isinstance(data, Mapping) else dict(body)

    def _parse_upload(self, body: Any) -> str:
        data = body.get("data")
        url = data.get("url") if isinstance(data, Mapping) else body.get("url")
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError("the upload answer has no data.url")
        return url

    # -- decisions after one attempt
    def _after_response(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        response: httpx.Response,
        attempt: int,
        max_retries: int | None = None,
    ) -> Step:
        retries = self._settings.max_retries if max_retries is None else max_retries
        status = response.status_code
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s (attempt %d)", spec.method, _short_url(str(request.url)), status, attempt + 1)
        if status >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            retry_after = parse_retry_after(response.headers) if status in (429, 503) else None
            can_retry = attempt < retries and (
                status in _RETRYABLE_CREATE_STATUS if spec.creates else _read_retryable_status(status)
            )
            if can_retry:
                delay = retry_after if retry_after is not None else backoff_delay(attempt, rng=self._random)
                return Step(retry_in=delay)
            if spec.creates and status >= 500 and status != 503:
                return Step(error=self._submission_unknown(request, f"the server answered {status}"))
            return Step(error=self._status_error(spec, request, response, body, retry_after, attempt))
        if status < 200 or status >= 300:  # 1xx/3xx: not an answer we understand
            return self._malformed(spec, request, attempt, retries, f"an unexpected HTTP {status} answer")
        try:
            body = response.json()
        except ValueError:
            return self._malformed(spec, request, attempt, retries, "an answer that is not valid JSON")
        try:
            checked = self._check_envelope(body, spec)
            value = spec.parse(checked) if spec.parse else checked
        except APIError as exc:
            return Step(error=exc)
        except ValueError as exc:
            what = f"an answer the API's format does not explain ({exc})"
            return self._malformed(spec, request, attempt, retries, what)
        return Step(value=value)

    def _malformed(self, spec: RequestSpec, request: httpx.Request, attempt: int, retries: int, what: str) -> Step:
        if spec.creates:
            return Step(error=self._submission_unknown(request, f"the server sent {what}"))
        if attempt < retries:
            return Step(retry_in=backoff_delay(attempt, rng=self._random))
        return Step(
            error=MalformedResponseError(
                self._redact(
                    f"Could not {spec.what}: the server sent {what}. "
                    "This is usually temporary (a proxy or an outage); try again shortly."
                ),
                request=_safe_request(request),
            )
        )

    def _after_exception(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        exc: BaseException,
        attempt: int,
        max_retries: int | None = None,
    ) -> Step:
        retries = self._settings.max_retries if max_retries is None else max_retries
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s (attempt %d)", spec.method, _short_url(str(request.url)), type(exc).__name__, attempt + 1
            )
        if not isinstance(exc, httpx.TransportError):
            return Step(error=exc)
        if spec.creates:
            if _never_connected(exc) and attempt < retries:
                return Step(retry_in=backoff_delay(attempt, rng=self._random))
            if not _never_sent(exc):
                return Step(
                    error=self._submission_unknown(
                        request, f"the connection broke after the request went out: {type(exc).__name__}"
                    ),
                    cause=exc,
                )
        elif attempt < retries and isinstance(exc, _TRANSIENT_TRANSPORT):
            return Step(retry_in=backoff_delay(attempt, rng=self._random))
        return Step(error=self._connection_error(spec, request, exc, attempt), cause=exc)

    # -- error construction
    @property
    def _service(self) -> str:
        """Who answered, for messages: "PiAPI", or "The simulator" when it is the simulator."""
        return "The simulator" if self.is_simulator else "PiAPI"

    def _where(self) -> str:
        if self.is_simulator:
            return f"the simulator at {self.base_url}"
        return self.base_url

    def _connection_error(
        self, spec: RequestSpec, request: httpx.Request, exc: BaseException, attempt: int
    ) -> APIConnectionError:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        detail = self._redact(str(exc)) or type(exc).__name__
        hint = (
            "Is the simulator still running?"
            if self.is_simulator
            else "Check the network connection (and PIAPI_BASE_URL), then try again."
        )
        if spec.creates:
            hint = "No task was created. " + hint
        if isinstance(exc, httpx.TimeoutException):
            message = (
                f"Timed out trying to {spec.what} at {self._where()}{tries} ({type(exc).__name__}). "
                f"{hint} A larger timeout= may help."
            )
            return APITimeoutError(message, request=_safe_request(request))
        message = f"Could not {spec.what}: no answer from {self._where()}{tries} ({detail}). {hint}"
        return APIConnectionError(message, request=_safe_request(request))

    def _submission_unknown(self, request: httpx.Request, reason: str) -> SubmissionUnknownError:
        where = "the simulator's task list" if self.is_simulator else "the PiAPI dashboard's task list"
        return SubmissionUnknownError(
            self._redact(
                f"The create request may have created a task ({reason}), so it was not sent again "
                f"(nothing was resent). Check {where} before submitting again, or you may pay twice."
            ),
            request=_safe_request(request),
        )

    def _status_error(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        response: httpx.Response,
        body: Any,
        retry_after: float | None,
        attempt: int,
    ) -> APIStatusError:
        status = response.status_code
        api_message = _api_message(body, response)
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        kwargs: dict[str, Any] = {
            "status_code": status,
            "body": _redact_value(body, self._settings.api_key),
            "request": _safe_request(request),
        }
        kwargs["response"] = _safe_response(response, kwargs["request"])
        cls: type[APIStatusError]
        if status == 400:
            cls = BadRequestError
            text = (
                f"{self._service} refused the request to {spec.what} (400 Bad Request): {api_message}. "
                "Check the prompt, images and duration (10 to 30 s)."
            )
        elif status in (401, 403):
            cls = AuthenticationError
            if spec.upload and status == 403:
                text = (
                    f"{self._service} refused the image upload (403): {api_message}. Uploads need a paid PiAPI "
                    "plan; use image_encoding='base64' instead."
                )
            elif status == 401:
                text = (
                    f"{self._service} did not accept the API key (401 Unauthorized): {api_message}. "
                    "Check PIAPI_API_KEY or the api_key= you passed."
                )
            else:
                text = (
                    f"{self._service} refused to {spec.what} (403 Forbidden): {api_message}. The key may not "
                    "allow this, or your plan level is too low."
                )
        elif status == 404:
            cls = NotFoundError
            if spec.task_id:
                text = (
                    f"{self._service} has no task {spec.task_id} (404 Not Found): {api_message}. "
                    "Check the id; old tasks expire."
                )
            else:
                text = f"{self._service} could not {spec.what} (404 Not Found): {api_message}. Check base_url."
        elif status == 429:
            cls = RateLimitError
            kwargs["retry_after"] = retry_after
            wait = f"wait {retry_after:.0f} s" if retry_after else "wait a minute"
            text = (
                f"{self._service} is limiting requests (429 Too Many Requests){tries}: {api_message}. "
                f"Please {wait} and try again."
            )
        elif status >= 500:
            cls = ServerError
            text = (
                f"{self._service} had a server error ({status}){tries} trying to {spec.what}: {api_message}. "
                "Try again in a minute."
            )
        else:
            cls = APIStatusError
            reason = response.reason_phrase or "error"
            text = f"{self._service} answered {status} {reason} to the request to {spec.what}: {api_message}."
        return cls(self._redact(text), **kwargs)

    # -- waiting
    def _waiter(
        self,
        task_or_id: "Task | str",
        timeout: float | None,
        clock: Callable[[], float],
        expected_seconds: float | None = None,
    ) -> Waiter:
        if not isinstance(task_or_id, (Task, str)):
            raise InvalidInputError(f"wait() needs a Task or a task id string, not {type(task_or_id).__name__}.")
        return Waiter(
            task_or_id, timeout=timeout, poll=self.poll, clock=clock, rng=self._random, redact=self._redact,
            expected_seconds=expected_seconds,
        )

    # -- downloads
    @staticmethod
    def _download_target(task: "Task | str", path: "str | os.PathLike[str]") -> tuple[str, Path]:
        if isinstance(task, Task):
            url = task.video_url
            if not url:
                raise DownloadError(
                    f"Task {task.task_id} has no video URL yet (status {task.status}). "
                    "Wait for it to complete (client.wait) before downloading."
                )
            name = f"{task.task_id}.mp4"
        elif isinstance(task, str) and task.strip().lower().startswith(("http://", "https://")):
            url = task.strip()
            name = Path(httpx.URL(url).path).name or "video.mp4"
        else:
            raise DownloadError(f"download() needs a completed Task or an http(s) video URL, not {task!r}.")
        dest = Path(os.fspath(path)).expanduser()
        if dest.is_dir():
            dest = dest / name
        return url, dest

    def _download_request(self, http: "httpx.Client | httpx.AsyncClient", url: str) -> httpx.Request:
        """A GET for the result video that never carries the API key (the host is not PiAPI's API)."""
        request = http.build_request(
            "GET", url, headers={"accept": "video/*,*/*", "user-agent": USER_AGENT}, timeout=self._settings.timeout
        )
        if API_KEY_HEADER in request.headers:  # e.g. a shared http_client with default headers
            del request.headers[API_KEY_HEADER]
        return request

    def _download_status(self, url: str, response: httpx.Response, attempt: int) -> Step:
        status = response.status_code
        logger.debug("GET %s -> %s (download, attempt %d)", _short_url(url), status, attempt + 1)
        if 200 <= status < 300:
            return Step(value=True)
        if attempt < self._settings.max_retries and _read_retryable_status(status):
            retry_after = parse_retry_after(response.headers)
            return Step(retry_in=retry_after if retry_after is not None else backoff_delay(attempt, rng=self._random))
        hint = (
            "PiAPI deletes results after a while; if the link expired, generate again."
            if status in (403, 404, 410)
            else "Try again in a minute."
        )
        return Step(error=DownloadError(f"Could not download the video from {_short_url(url)} (HTTP {status}). {hint}"))

    def _download_exception(self, url: str, exc: BaseException, attempt: int) -> Step:
        logger.debug("GET %s -> %s (download, attempt %d)", _short_url(url), type(exc).__name__, attempt + 1)
        if isinstance(exc, httpx.TransportError) and attempt < self._settings.max_retries:
            if isinstance(exc, _TRANSIENT_TRANSPORT):
                return Step(retry_in=backoff_delay(attempt, rng=self._random))
        if isinstance(exc, httpx.HTTPError):
            return Step(
                error=DownloadError(
                    f"Could not download the video from {_short_url(url)} ({type(exc).__name__}: "
                    f"{self._redact(str(exc))}). Check the network and try again."
                ),
                cause=exc,
            )
        return Step(error=exc)
