"""The request core: every decision `Client` and `AsyncClient` share, with no I/O in it.

The two shells (`_sync`, `_async`) only send requests, sleep and read clocks. Here, once:
what each API call sends, what an answer means (envelope, status → error, messages a
person can act on, the key redacted), and whether an attempt is tried again. Keeping it
sans-I/O is what lets the sync client be a real `httpx.Client` (it works inside Jupyter's
running event loop) without writing any rule twice.

The money rule is enforced in `BaseClient._after_exception` and `_after_response`: a
create request is retried only when it certainly did not create a task (the connection
never opened, or the API answered 429/503); otherwise `SubmissionUnknownError` is raised
and nothing is resent. An answer's `code` counts as much as its HTTP status: an HTTP 200
envelope with code 404 is a 404. A create's error answer that still names a task id means
a task exists: the client keeps that id and follows it, whatever the code says.

Why past 600 lines: the decisions have to sit together (each answer is classified once,
for creates, reads, uploads and cancels alike), and splitting the error texts from the
rules that pick them would only scatter one table over two files.
"""

from __future__ import annotations

import base64
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ..constants import MODEL, TASK_TYPE, UPLOAD_BASE64_LIMIT, UPLOAD_EXTENSIONS, UPLOAD_NAME_CHARS
from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
)
from ..inputs import FramepackInput, check_request_input
from ..task import Task, parse_task
from ._polling import PollStrategy, Waiter, coerce_poll
from ._retry import (
    RETRYABLE_CREATE_STATUS,
    TRANSIENT_TRANSPORT,
    MalformedResponseError,
    Step,
    backoff_delay,
    never_connected,
    never_sent,
    parse_retry_after,
    read_retryable_status,
)
from ._logs import guard_logs
from ._settings import (
    API_KEY_HEADER,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    Secret,
    is_loopback_url,
    redact,
    redact_bytes,
    redact_value,
    resolve_settings,
    short_url,
)

__all__ = ["BaseClient", "INLINE_IMAGE_LIMIT", "RequestSpec", "UploadJob", "upload_file_name", "upload_jobs"]

logger = logging.getLogger("framepack_widgets")

NO_KEY_MESSAGE = (
    "No PiAPI key: pass api_key= or set PIAPI_API_KEY "
    "(or use the offline simulator: framepack_widgets.simulator.Simulator). No request was sent."
)

_SUCCESS_CODES = (200, 0)
_SUCCESS_WORDS = ("success", "ok")
#: The longest base64 image sent inline when uploads are refused. PiAPI documents no limit
#: for a base64 image in the create body; its upload limit is the one it gives.
INLINE_IMAGE_LIMIT = UPLOAD_BASE64_LIMIT
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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


def _task_in(body: Any) -> Task | None:
    """The task an answer names, if it names one (whatever its code says)."""
    if not isinstance(body, Mapping):
        return None
    try:
        return parse_task(body)
    except ValueError:
        return None


def _http_like(code: int) -> bool:
    return 400 <= code <= 599


def _safe_request(request: httpx.Request) -> httpx.Request:
    """A copy of the request without the API key, for errors that carry it."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != API_KEY_HEADER]
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = b""
    return httpx.Request(request.method, request.url, headers=headers, content=content)


def _safe_response(response: httpx.Response, request: httpx.Request, secret: "Secret | None") -> httpx.Response:
    """A copy of the response for errors that carry it, with any echo of the key removed."""
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, redact(v, secret)) for k, v in response.headers.multi_items() if k.lower() not in skip]
    try:
        content = redact_bytes(response.content, secret)
    except httpx.ResponseNotRead:
        content = b""
    return httpx.Response(response.status_code, headers=headers, content=content, request=request)


@dataclass(frozen=True)
class UploadJob:
    """One image to send to the ephemeral-resource endpoint before the create request."""

    field: str  # "start_image" | "end_image"
    file_name: str
    data: bytes


def upload_file_name(name: str) -> str | None:
    """`name` as PiAPI's upload endpoint takes it (safe characters, at most 128 of them,
    extension jpg/jpeg/png/webp); None when its type is not one the endpoint accepts."""
    stem, dot, extension = name.strip().rpartition(".")
    extension = extension.lower()
    if not dot or extension not in UPLOAD_EXTENSIONS:
        return None
    stem = _UNSAFE_NAME.sub("_", stem).strip("._-") or "image"
    return f"{stem[: UPLOAD_NAME_CHARS - len(extension) - 1]}.{extension}"


def upload_jobs(value: FramepackInput) -> list[UploadJob]:
    """The images of an input in image_encoding="upload" mode that are bytes (URLs pass
    through; an image whose type the upload endpoint refuses is sent inline as base64)."""
    if value.image_encoding != "upload":
        return []
    jobs = []
    for name, source in value.images().items():
        file_name = upload_file_name(source.filename)
        if source.data is not None and file_name is not None:
            jobs.append(UploadJob(field=name, file_name=file_name, data=source.data))
    return jobs


def fits_inline(job: UploadJob) -> bool:
    """Whether the image may go inline (base64) in the create request instead."""
    return 4 * ((len(job.data) + 2) // 3) <= INLINE_IMAGE_LIMIT


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
        allow_http: bool | None = None,
    ) -> None:
        self._settings = resolve_settings(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url,
            allow_http=allow_http,
        )
        guard_logs(self._settings.api_key)
        self.poll: PollStrategy = coerce_poll(poll)
        self._random = random.Random()
        self._uploads_refused = False  # the plan has no uploads (403): send images inline from now on

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

    def _upload_jobs(self, input_obj: "FramepackInput | Mapping[str, Any]") -> list[UploadJob]:
        """Images to send to the upload endpoint first (only in image_encoding="upload" mode).

        Also checks the input, so nothing is sent (nor uploaded) for something unusable.
        """
        if isinstance(input_obj, FramepackInput):
            return upload_jobs(input_obj)
        check_request_input(input_obj)
        return []

    def _goes_inline(self, job: UploadJob) -> bool:
        """Uploads were refused once (no uploads on this plan): only an image too large to
        go inline is tried again."""
        return self._uploads_refused and fits_inline(job)

    def _inline_instead(self, exc: AuthenticationError, job: UploadJob) -> bool:
        """After an upload was refused: True to send the image inline as base64 instead (a 403
        "insufficient plan level" and an image that fits), with a one-line notice."""
        if exc.status_code != 403 or not fits_inline(job):
            return False
        if not self._uploads_refused:
            self._uploads_refused = True
            logger.warning(
                "%s refused the image upload (403: %s); sending images inline as base64 instead.",
                self._service, _api_message(exc.body),
            )
        return True

    def _create_spec(
        self, input_obj: "FramepackInput | Mapping[str, Any]", uploaded: Mapping[str, str] | None = None
    ) -> RequestSpec:
        """The create request. `input_obj` is a FramepackInput, or a plain dict that is the
        request's `input` object itself (checked by `inputs.check_request_input`).
        `uploaded` maps start_image/end_image to URLs returned by the upload endpoint."""
        if isinstance(input_obj, FramepackInput):
            payload = input_obj.request_input(uploaded=uploaded)
        else:
            payload = check_request_input(input_obj)
        body = {"model": MODEL, "task_type": TASK_TYPE, "input": payload, "config": {"service_mode": "public"}}
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

    def _build_request(
        self, http: "httpx.Client | httpx.AsyncClient", spec: RequestSpec, timeout: httpx.Timeout | None = None
    ) -> httpx.Request:
        """One attempt at `spec`: the key header and this attempt's timeout, built anew each time."""
        return http.build_request(
            spec.method, spec.url, json=spec.json, headers=self._headers(spec), timeout=timeout or self._settings.timeout
        )

    # -- body parsing (ValueError = malformed)
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
            logger.debug("%s %s -> %s (attempt %d)", spec.method, short_url(str(request.url)), status, attempt + 1)
        if status >= 400:
            try:
                body = redact_value(response.json(), self._settings.api_key)
            except ValueError:
                body = None
            return self._after_error(spec, request, response, body, status, attempt, retries)
        if status < 200 or status >= 300:  # 1xx/3xx: not an answer we understand
            return self._malformed(spec, request, attempt, retries, f"an unexpected HTTP {status} answer")
        try:
            # The API may echo the key (in an error, in logs): it never gets past this line, so
            # never into a Task, a run, the store, the widget or an export.
            body = redact_value(response.json(), self._settings.api_key)
        except ValueError:
            return self._malformed(spec, request, attempt, retries, "an answer that is not valid JSON")
        if not isinstance(body, Mapping):
            return self._malformed(spec, request, attempt, retries, "an answer that is not a JSON object")
        code = _envelope_code(body)
        if code is not None and code not in _SUCCESS_CODES:  # HTTP 200, but the envelope says otherwise
            return self._after_error(spec, request, response, body, code, attempt, retries, in_envelope=True)
        try:
            value = spec.parse(body) if spec.parse else body
        except ValueError as exc:
            what = f"an answer the API's format does not explain ({exc})"
            return self._malformed(spec, request, attempt, retries, what)
        return Step(value=value)

    def _after_error(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        response: httpx.Response,
        body: Any,
        code: int,
        attempt: int,
        retries: int,
        *,
        in_envelope: bool = False,
    ) -> Step:
        """An error answer: an HTTP error status, or an HTTP 200 whose envelope `code` is one.

        The money rule first: a create's answer that names a task means a task exists, so
        the run keeps that id and follows it (never resent, never "nothing was charged").
        """
        if spec.creates:
            named = _task_in(body)
            if named is not None:
                logger.warning(
                    "%s answered the create request with %s (%s) but named task %s: following that task.",
                    self._service, f"code {code}" if in_envelope else f"HTTP {code}",
                    self._redact(_api_message(body)), named.task_id,
                )
                return Step(value=named)
        if not _http_like(code):  # PiAPI's own numbers (10002, -1, ...): no HTTP meaning to lean on
            if spec.creates:
                return Step(error=self._submission_unknown(
                    request, f"the server answered code {code}: {_api_message(body)}, without a task id"))
            return Step(error=APIError(
                self._redact(
                    f"{self._service} could not {spec.what}: {_api_message(body)} (code {code}). "
                    "Check the request; if it persists, try again later."
                ),
                request=_safe_request(request),
            ))
        retry_after = parse_retry_after(response.headers) if code in (429, 503) else None
        can_retry = attempt < retries and (
            code in RETRYABLE_CREATE_STATUS if spec.creates else read_retryable_status(code)
        )
        if can_retry:
            delay = retry_after if retry_after is not None else backoff_delay(attempt, rng=self._random)
            return Step(retry_in=delay)
        if spec.creates and code >= 500 and code != 503:
            answered = f"code {code} in an HTTP 200 answer" if in_envelope else str(code)
            return Step(error=self._submission_unknown(request, f"the server answered {answered}"))
        return Step(error=self._status_error(spec, request, response, body, retry_after, attempt, code, in_envelope))

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
                "%s %s -> %s (attempt %d)", spec.method, short_url(str(request.url)), type(exc).__name__, attempt + 1
            )
        if not isinstance(exc, httpx.TransportError):
            return Step(error=exc)
        if spec.creates:
            if never_connected(exc) and attempt < retries:
                return Step(retry_in=backoff_delay(attempt, rng=self._random))
            if not never_sent(exc):
                return Step(
                    error=self._submission_unknown(
                        request, f"the connection broke after the request went out: {type(exc).__name__}"
                    ),
                )
        elif attempt < retries and isinstance(exc, TRANSIENT_TRANSPORT):
            return Step(retry_in=backoff_delay(attempt, rng=self._random))
        return Step(error=self._connection_error(spec, request, exc, attempt))

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
        status: int,
        in_envelope: bool = False,
    ) -> APIStatusError:
        """The error for status `status` (an HTTP status, or an envelope's code classified like one)."""
        api_message = _api_message(body, response)
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        kwargs: dict[str, Any] = {
            "status_code": status,  # an envelope's code stands for the HTTP status it names
            "body": redact_value(body, self._settings.api_key),
            "request": _safe_request(request),
        }
        kwargs["response"] = _safe_response(response, kwargs["request"], self._settings.api_key)
        cls: type[APIStatusError]
        if status == 400:
            cls = BadRequestError
            text = f"{self._service} refused the request to {spec.what} (400 Bad Request): {api_message}."
            if spec.creates:
                text += " Check the prompt, images and duration (10 to 30 s)."
        elif status == 402:
            cls = PaymentRequiredError
            text = (
                f"{self._service} refused to {spec.what}: the account's balance is too low (402 Payment "
                f"Required){tries}: {api_message}. Top up your PiAPI account (workspace, billing), then try again."
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
            reason = httpx.codes.get_reason_phrase(status) or "error"
            text = f"{self._service} answered {status} {reason}{tries} to the request to {spec.what}: {api_message}."
        if in_envelope:
            text += f" (It came as code {status} in an HTTP 200 answer.)"
        if spec.creates and status < 500:  # refused before a task existed (a 5xx create is "unknown")
            text += " No task was created, so nothing was charged."
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
