"""The request core `Client` and `AsyncClient` share: configuration and what each call sends.

The two shells (`_sync`, `_async`) only send requests, sleep and read clocks; everything
else is decided once, without I/O, which is what lets the sync client be a real
`httpx.Client` (it works inside Jupyter's running event loop) without writing any rule
twice. This module holds the configuration and each call's request (`RequestSpec`); the
decisions after each attempt (the money rule) are `_decisions`', reading the envelope is
`_envelope`'s, the messages are `_texts`', the upload jobs `_uploads`'.

Every request to the API goes out with `follow_redirects=False` (`SEND_OPTIONS`), whatever
`http_client` the caller handed in: a redirect would carry the key and the request body to
another host.

Toward the classroom service (`Settings.class_service`) a create carries an `Idempotency-Key`
(a run's id, else one made per call), which the money rule lets it resend (`_decisions`); a
wait asks the service's long poll (`?wait=`); `share_with_class` and `class_gallery` are the
service's own routes.
"""

from __future__ import annotations

import base64
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..constants import MODEL, SIMULATOR_HEADER, TASK_TYPE
from ..errors import APIStatusError, AuthenticationError, InvalidInputError, UsageError
from ..inputs import FramepackInput, check_request_input
from ..task import Task, check_task_id
from ._decisions import Decisions
from ._envelope import (
    api_message,
    parse_account,
    parse_optional_task,
    parse_task_body,
    parse_task_list,
    parse_upload,
)
from ._logs import guard_logs
from ._polling import PollStrategy, Waiter, coerce_poll
from ._retry import RequestSpec, Step
from ._settings import (
    API_KEY_HEADER,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    is_loopback_url,
    made_for_the_simulator,
    resolve_settings,
)
from ._texts import ErrorTexts
from ._uploads import UploadJob, fits_inline, upload_jobs

__all__ = ["BaseClient", "CANCEL_FALLBACK_STATUS", "IDEMPOTENCY_HEADER", "LONG_POLL_SECONDS", "SEND_OPTIONS"]

logger = logging.getLogger("framepack_widgets")

#: Passed to every `http.send()` of an API call: a redirect is an answer, never followed.
SEND_OPTIONS: dict[str, Any] = {"follow_redirects": False}
#: PiAPI's docs show `DELETE /api/v1/task/{id}`, its own CLI `POST /api/v1/task/{id}/cancel`:
#: the one that answers these (no such route, or not that method) gives way to the other.
CANCEL_FALLBACK_STATUS = frozenset({404, 405})
_CANCEL_ROUTES = ("delete", "post")
#: Sent with a create to a server that honours it (the classroom service); never to PiAPI.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: How long one long-poll GET asks the classroom service to hold it (the service caps it at
#: 55 s, under the 60 s after which proxies cut an idle request).
LONG_POLL_SECONDS = 25.0
#: The longest Idempotency-Key the service takes.
_MAX_KEY_CHARS = 255


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
        audience: str = "python",
    ) -> None:
        self._settings = resolve_settings(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url,
            allow_http=allow_http, audience=audience,
        )
        guard_logs(self._settings.api_key)
        guard_logs(self._settings.base_auth)
        self.poll: PollStrategy = coerce_poll(poll)
        self._random = random.Random()
        self._simulator = made_for_the_simulator(self._settings)  # until the server says
        # Only this machine's answers may say "simulator" (a remote one could claim it to look free);
        # the classroom service never is, wherever it runs.
        local = is_loopback_url(self._settings.base_url) and not self._settings.class_service
        self._local_host = httpx.URL(self._settings.base_url).host if local else None
        self._texts = ErrorTexts(self._settings, lambda: self._simulator)
        self._decisions = Decisions(self._settings, self._texts, self._random)
        self._uploads_refused = False  # the plan has no uploads (403): send images inline from now on
        self._cancel_routes = _CANCEL_ROUTES  # the one that worked last goes first

    # -- public, read-only configuration
    @property
    def base_url(self) -> str:
        """Where the API is, as shown: without any `user:password@` the address carries."""
        return self._settings.display_base_url

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
        """True when talking to the offline simulator, not PiAPI: a loopback address that
        identified itself as the simulator in its answers (before any answer: a client made
        with the simulator's kind of key). A proxy on this machine with a real key is PiAPI."""
        return self._simulator

    @property
    def has_api_key(self) -> bool:
        return self._settings.api_key is not None

    @property
    def is_class_service(self) -> bool:
        """True when the base URL is the classroom service on a JupyterHub (FRAMEPACK_SERVICE_URL):
        the key is the student's hub token, the budget is the class's, and creates are sent with
        an Idempotency-Key (so one may be resent safely)."""
        return self._settings.class_service

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, simulator={self.is_simulator}, "
            f"{'class_service=True, ' if self.is_class_service else ''}"
            f"api_key={'set' if self.has_api_key else 'missing'})"
        )

    # -- text hygiene
    def _redact(self, text: str) -> str:
        return self._texts.redact(text)

    # -- request specs
    def _url(self, path: str) -> str:
        return f"{self._settings.base_url}{path}"

    @staticmethod
    def _task_id(task_id: "Task | str") -> str:
        if isinstance(task_id, Task):
            return task_id.task_id
        return check_task_id(task_id.strip() if isinstance(task_id, str) else task_id)

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
                self._texts.service, api_message(exc.body),
            )
        return True

    def _idempotency_key(self, given: str | None) -> str | None:
        """The create's Idempotency-Key toward the classroom service (`given`, a run's id, else a
        new one for this call); None toward PiAPI, which is never sent one."""
        if given is not None and (not isinstance(given, str) or not given.strip() or len(given) > _MAX_KEY_CHARS):
            raise InvalidInputError(f"idempotency_key must be 1 to {_MAX_KEY_CHARS} characters (a run id), "
                                    f"not {given!r}. Nothing was sent.")
        if not self._settings.class_service:
            return None
        return given.strip() if given is not None else uuid.uuid4().hex

    def _create_spec(
        self,
        input_obj: "FramepackInput | Mapping[str, Any]",
        uploaded: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RequestSpec:
        """The create request. `input_obj` is a FramepackInput, or a plain dict that is the
        request's `input` object itself (checked by `inputs.check_request_input`).
        `uploaded` maps start_image/end_image to URLs returned by the upload endpoint;
        `idempotency_key` is the create's key (`_idempotency_key`), None toward PiAPI."""
        if isinstance(input_obj, FramepackInput):
            payload = input_obj.request_input(uploaded=uploaded)
        else:
            payload = check_request_input(input_obj)
        body = {"model": MODEL, "task_type": TASK_TYPE, "input": payload, "config": {"service_mode": "public"}}
        return RequestSpec(
            "POST", self._url("/api/v1/task"), "create the task", json=body, creates=True, parse=parse_task_body,
            idempotency_key=idempotency_key,
        )

    def _get_spec(self, task_id: str, wait: float | None = None) -> RequestSpec:
        """A GET of the task; `wait`: seconds the classroom service may hold it for a change (long poll)."""
        query = f"?wait={wait:.0f}" if wait else ""
        return RequestSpec(
            "GET", self._url(f"/api/v1/task/{quote(task_id, safe='')}{query}"), f"get task {task_id}",
            task_id=task_id, parse=parse_task_body,
        )

    def _long_poll(self) -> bool:
        """Whether waits hold their GETs at the server (the classroom service) instead of sleeping."""
        return self._settings.class_service

    def _class_only(self, what: str) -> None:
        if not self._settings.class_service:
            raise UsageError(
                f"{what} works only through the classroom service on a JupyterHub (FRAMEPACK_SERVICE_URL set by "
                f"the teacher); this client talks to {self._texts.where()}. Nothing was sent.")

    def _share_spec(self, task_id: str, shared: bool) -> RequestSpec:
        if not isinstance(shared, bool):
            raise InvalidInputError(f"shared must be True or False, not {shared!r}. Nothing was sent.")
        return RequestSpec(
            "POST", self._url(f"/api/v1/task/{quote(task_id, safe='')}/share"),
            f"{'share' if shared else 'unshare'} task {task_id}", json={"shared": shared}, task_id=task_id,
            parse=parse_task_body,
        )

    def _gallery_spec(self) -> RequestSpec:
        return RequestSpec("GET", self._url("/gallery"), "read the class gallery", parse=parse_task_list)

    def _cancel_specs(self, task_id: str) -> list[RequestSpec]:
        """Both ways to cancel, the one to try first first (see `CANCEL_FALLBACK_STATUS`)."""
        path = f"/api/v1/task/{quote(task_id, safe='')}"
        specs = {
            "delete": RequestSpec("DELETE", self._url(path), f"cancel task {task_id}", task_id=task_id,
                                  parse=parse_optional_task),
            "post": RequestSpec("POST", self._url(f"{path}/cancel"), f"cancel task {task_id}", task_id=task_id,
                                parse=parse_optional_task),
        }
        return [specs[route] for route in self._cancel_routes]

    def _cancel_falls_back(self, exc: APIStatusError) -> bool:
        """The first cancel route was refused as a route (404/405): try the other."""
        return exc.status_code in CANCEL_FALLBACK_STATUS

    def _cancel_worked(self, spec: RequestSpec) -> None:
        """Remember the route that answered, so the next cancel tries it first."""
        first = "post" if spec.method == "POST" else "delete"
        self._cancel_routes = (first, *(route for route in _CANCEL_ROUTES if route != first))

    def _cancel_refused(self, first: APIStatusError, second: APIStatusError, task_id: str) -> APIStatusError:
        return self._texts.cancel_refused_twice(first, second, task_id)

    def _account_spec(self) -> RequestSpec:
        return RequestSpec("GET", self._url("/account/info"), "read the account info", parse=parse_account)

    def _upload_spec(self, job: UploadJob) -> RequestSpec:
        return RequestSpec(
            "POST", self._settings.upload_url, f"upload the {job.field.replace('_', ' ')}",
            json={"file_name": job.file_name, "file_data": base64.b64encode(job.data).decode("ascii")},
            upload=True, parse=parse_upload,
        )

    def _headers(self, spec: RequestSpec) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        if spec.authenticated:
            key = self._settings.api_key
            if key is None:
                raise AuthenticationError(self._settings.words.no_key, status_code=401)
            headers[API_KEY_HEADER] = key.get()
        if spec.idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = spec.idempotency_key
        auth = self._settings.base_auth  # a proxy's user:password, to the base URL's host only
        if auth is not None and spec.url.startswith(self._settings.base_url + "/"):
            headers["authorization"] = auth.get()
        return headers

    def _build_request(
        self, http: "httpx.Client | httpx.AsyncClient", spec: RequestSpec, timeout: httpx.Timeout | None = None
    ) -> httpx.Request:
        """One attempt at `spec`: the key header and this attempt's timeout, built anew each time."""
        return http.build_request(
            spec.method, spec.url, json=spec.json, headers=self._headers(spec), timeout=timeout or self._settings.timeout
        )

    # -- decisions after one attempt (the money rule lives in `_decisions`)
    def _after_response(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        response: httpx.Response,
        attempt: int,
        max_retries: int | None = None,
        reached: bool = False,
    ) -> Step:
        self._note_server(request, response)
        retries = self._settings.max_retries if max_retries is None else max_retries
        return self._decisions.after_response(spec, request, response, attempt, retries, reached)

    def _after_exception(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        exc: BaseException,
        attempt: int,
        max_retries: int | None = None,
        reached: bool = False,
    ) -> Step:
        retries = self._settings.max_retries if max_retries is None else max_retries
        return self._decisions.after_exception(spec, request, exc, attempt, retries, reached)

    def _note_server(self, request: httpx.Request, response: httpx.Response) -> None:
        """Whether the server is the simulator, as its answers say (only this machine's are believed)."""
        if self._local_host is not None and request.url.host == self._local_host:
            self._simulator = SIMULATOR_HEADER in response.headers

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
            expected_seconds=expected_seconds, words=self._settings.words,
            long_poll=LONG_POLL_SECONDS if self._long_poll() else None,
        )

    def _wait_spec(self, waiter: Waiter) -> tuple[RequestSpec, httpx.Timeout]:
        """The next GET of a wait and its timeout: a long poll toward the classroom service (its
        read timeout above the wait it asks for), else a plain GET within the wait's deadline."""
        hold = waiter.hold_seconds()
        if hold:
            return self._get_spec(waiter.task_id, wait=hold), waiter.long_poll_timeout(self.timeout, hold)
        return self._get_spec(waiter.task_id), waiter.request_timeout(self.timeout)
