"""Every error the client raises, worded for a person: what happened, and what to do next.

One place builds the messages (and the request and response an error carries, without the
key), so every one of them names the backend the same way ("PiAPI", "The simulator" when it
is the simulator, "The class service" in a class on a JupyterHub), shows the base URL in its
display form (never `user:password@`), takes its advice from the audience's `Words`, and has
the key taken out last. In a class, what to do next is often to ask the teacher: who holds
the budget, the pause and the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
)
from ._envelope import api_message
from ._redaction import display_url, redact, redact_bytes, redact_value
from ._retry import MalformedResponseError, RequestSpec
from ._settings import API_KEY_HEADER, Secret, Settings

__all__ = ["ErrorTexts", "safe_request", "safe_response"]


def safe_request(request: httpx.Request) -> httpx.Request:
    """A copy of the request without the API key (nor a base URL's password), for errors that carry it."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in (API_KEY_HEADER, "authorization")]
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = b""
    url = request.url.copy_with(username=None, password=None) if request.url.userinfo else request.url
    return httpx.Request(request.method, url, headers=headers, content=content)


def safe_response(response: httpx.Response, request: httpx.Request, secret: "Secret | None") -> httpx.Response:
    """A copy of the response for errors that carry it, with any echo of the key removed."""
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, redact(v, secret)) for k, v in response.headers.multi_items() if k.lower() not in skip]
    try:
        content = redact_bytes(response.content, secret)
    except httpx.ResponseNotRead:
        content = b""
    return httpx.Response(response.status_code, headers=headers, content=content, request=request)


def _redirect_target(request: httpx.Request, response: httpx.Response) -> str:
    """Where a redirect points, for a message: host and path, never a query or a password."""
    location = response.headers.get("location", "").strip()
    if not location:
        return "an address it did not give"
    try:
        return display_url(str(request.url.join(location)))
    except Exception:  # noqa: BLE001 - an unparseable Location is shown scrubbed, as text
        return display_url(location)[:120]


class ErrorTexts:
    """Builds the client's errors; `is_simulator` says (at the time of the error) who answered."""

    def __init__(self, settings: Settings, is_simulator: Callable[[], bool]) -> None:
        self._settings = settings
        self._is_simulator = is_simulator

    # -- naming the backend
    @property
    def in_class(self) -> bool:
        return self._settings.class_service

    @property
    def service(self) -> str:
        """Who answered, for messages: "PiAPI", "The simulator", or "The class service"."""
        if self.in_class:
            return "The class service"
        return "The simulator" if self._is_simulator() else "PiAPI"

    def where(self) -> str:
        shown = self._settings.display_base_url
        if self.in_class:
            return f"the class service at {shown}"
        return f"the simulator at {shown}" if self._is_simulator() else shown

    def redact(self, text: str) -> str:
        return redact(text, self._settings.api_key)

    # -- the errors
    def connection_error(
        self, spec: RequestSpec, request: httpx.Request, exc: BaseException, attempt: int
    ) -> APIConnectionError:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        detail = self.redact(str(exc)) or type(exc).__name__
        if self.in_class:
            hint = "Try again in a minute; if it keeps failing, tell your teacher (the class service may be down)."
        elif self._is_simulator():
            hint = "Is the simulator still running?"
        else:
            hint = "Check the network connection (and PIAPI_BASE_URL), then try again."
        if spec.creates:
            hint = "No task was created. " + hint
        if isinstance(exc, httpx.TimeoutException):
            message = (
                f"Timed out trying to {spec.what} at {self.where()}{tries} ({type(exc).__name__}). "
                f"{hint} {self._settings.words.slow_request}"
            )
            return APITimeoutError(self.redact(message), request=safe_request(request))
        message = f"Could not {spec.what}: no answer from {self.where()}{tries} ({detail}). {hint}"
        return APIConnectionError(self.redact(message), request=safe_request(request))

    def submission_unknown(
        self, request: httpx.Request, reason: str, *, upstream: bool = False
    ) -> SubmissionUnknownError:
        """`upstream`: the class service said PiAPI's answer is what is unknown (it keeps that create)."""
        if self.in_class:
            check = ("Your teacher sees it in the class service's list of creates whose outcome is unknown: ask "
                     "before submitting again, or the class may pay twice." if upstream else
                     "Ask your teacher to look at the class service's tasks before submitting again, or the class "
                     "may pay twice.")
            text = f"The create request may have created a task ({reason}), so it was not sent again. {check}"
        else:
            where = "the simulator's task list" if self._is_simulator() else "the PiAPI dashboard's task list"
            text = (f"The create request may have created a task ({reason}), so it was not sent again "
                    f"(nothing was resent). Check {where} before submitting again, or you may pay twice.")
        return SubmissionUnknownError(self.redact(text), request=safe_request(request))

    def malformed(self, spec: RequestSpec, request: httpx.Request, what: str) -> MalformedResponseError:
        return MalformedResponseError(
            self.redact(
                f"Could not {spec.what}: the server sent {what}. "
                "This is usually temporary (a proxy or an outage); try again shortly."
            ),
            request=safe_request(request),
        )

    def odd_code(self, spec: RequestSpec, request: httpx.Request, body: Any, code: int) -> APIError:
        """An envelope code of PiAPI's own (10002, -1, ...) on a call that creates nothing."""
        return APIError(
            self.redact(
                f"{self.service} could not {spec.what}: {api_message(body)} (code {code}). "
                "Check the request; if it persists, try again later."
            ),
            request=safe_request(request),
        )

    def redirect_reason(self, request: httpx.Request, response: httpx.Response) -> str:
        """Why a redirect is not followed, for a create's "may have created a task" message."""
        return (
            f"the server answered {response.status_code} {response.reason_phrase or 'Redirect'}, a redirect to "
            f"{_redirect_target(request, response)}, which the client never follows: it would carry your key "
            "and the request to another address"
        )

    def redirected(self, spec: RequestSpec, request: httpx.Request, response: httpx.Response) -> APIStatusError:
        """A 3xx on a call that creates nothing: an error that says where it pointed and why not."""
        status = response.status_code
        reason = response.reason_phrase or httpx.codes.get_reason_phrase(status) or "Redirect"
        text = (
            f"{self.service} answered {status} {reason} to the request to {spec.what}: a redirect to "
            f"{_redirect_target(request, response)}. The client never follows a redirect, for it would carry "
            "your API key to another address. Check PIAPI_BASE_URL: use the address the API answers at."
        )
        if spec.upload:
            text += " No task was created, so nothing was charged."
        carried = safe_request(request)
        return APIStatusError(
            self.redact(text), status_code=status, body=None, request=carried,
            response=safe_response(response, carried, self._settings.api_key),
        )

    def status_error(
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
        said = api_message(body, response)
        service = self.service
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        kwargs: dict[str, Any] = {
            "status_code": status,  # an envelope's code stands for the HTTP status it names
            "body": redact_value(body, self._settings.api_key),
            "request": safe_request(request),
        }
        kwargs["response"] = safe_response(response, kwargs["request"], self._settings.api_key)
        cls: type[APIStatusError]
        class_text = self._class_status_text(spec, body, said, status) if self.in_class else None
        if class_text is not None:
            cls, text = class_text
            if status == 429:
                kwargs["retry_after"] = retry_after
        elif status == 400:
            cls = BadRequestError
            text = f"{service} refused the request to {spec.what} (400 Bad Request): {said}."
            if spec.creates:
                text += " Check the prompt, images and duration (10 to 30 s)."
        elif status == 402:
            cls = PaymentRequiredError
            text = (
                f"{service} refused to {spec.what}: the account's balance is too low (402 Payment "
                f"Required){tries}: {said}. Top up your PiAPI account (workspace, billing), then try again."
            )
        elif status in (401, 403):
            cls = AuthenticationError
            if spec.upload and status == 403:
                text = (
                    f"{service} refused the image upload (403): {said}. Uploads need a paid PiAPI "
                    f"plan; {self._settings.words.inline_images}."
                )
            elif status == 401:
                text = (
                    f"{service} did not accept the API key (401 Unauthorized): {said}. "
                    f"{self._settings.words.check_key}"
                )
            else:
                text = (
                    f"{service} refused to {spec.what} (403 Forbidden): {said}. The key may not "
                    "allow this, or your plan level is too low."
                )
        elif status == 404:
            cls = NotFoundError
            if spec.task_id:
                text = f"{service} has no task {spec.task_id} (404 Not Found): {said}. Check the id; old tasks expire."
            else:
                text = f"{service} could not {spec.what} (404 Not Found): {said}. {self._settings.words.check_base_url}"
        elif status == 429:
            cls = RateLimitError
            kwargs["retry_after"] = retry_after
            wait = f"wait {retry_after:.0f} s" if retry_after else "wait a minute"
            text = (
                f"{service} is limiting requests (429 Too Many Requests){tries}: {said}. "
                f"Please {wait} and try again."
            )
        elif status >= 500:
            cls = ServerError
            text = f"{service} had a server error ({status}){tries} trying to {spec.what}: {said}. Try again in a minute."
        else:
            cls = APIStatusError
            reason = httpx.codes.get_reason_phrase(status) or "error"
            text = f"{service} answered {status} {reason}{tries} to the request to {spec.what}: {said}."
        if in_envelope:
            text += f" (It came as code {status} in an HTTP 200 answer.)"
        if spec.creates and status < 500:  # refused before a task existed (a 5xx create is "unknown")
            text += " No task was created, so nothing was charged."
        return cls(self.redact(text), **kwargs)

    def _class_status_text(
        self, spec: RequestSpec, body: Any, said: str, status: int
    ) -> tuple[type[APIStatusError], str] | None:
        """The class service's refusals, said with who to ask; None for those said as for PiAPI."""
        data = body.get("data") if isinstance(body, dict) else None
        said = said.rstrip(". ")
        if status == 402:
            figures = data if isinstance(data, dict) else {}
            try:
                left, budget, asked = (float(figures[k]) for k in ("left_usd", "budget_usd", "asked_usd"))
            except (KeyError, TypeError, ValueError):
                return PaymentRequiredError, f"Your class budget is used up ({said}): ask your teacher."
            return PaymentRequiredError, (
                f"Your class budget is used up (${left:.2f} of ${budget:.2f} left; this run costs ${asked:.2f}): "
                "ask your teacher.")
        if status == 423:
            return APIStatusError, ("The class is paused by your teacher: no new runs for now. Try again when your "
                                    "teacher resumes the class.")
        if status == 401:
            return AuthenticationError, (
                f"The class service did not accept your hub token (401): {said}. Restart your server from the "
                "hub's control panel (File > Hub Control Panel), or ask your teacher.")
        if status == 403:
            return AuthenticationError, (
                f"The class service refused to {spec.what} (403): {said}. Ask your teacher (your hub role needs the "
                "scope access:services!service=framepack).")
        if status == 404 and spec.task_id:
            return NotFoundError, (f"The class service has no task {spec.task_id} of yours (404): {said}. Check the "
                                   "id: each student sees only their own tasks.")
        if status == 429:
            return RateLimitError, f"The class service is holding new runs back (429): {said}."
        return None

    def cancel_refused_twice(self, first: APIStatusError, second: APIStatusError, task_id: str) -> APIStatusError:
        """Both cancel routes refused: the second's error, saying what PiAPI answered to each."""
        said_first = api_message(first.body, first.response)
        said_second = api_message(second.body, second.response)
        text = (
            f"{self.service} did not cancel task {task_id}. It answered DELETE /api/v1/task/{task_id} with "
            f"{first.status_code} ({said_first}) and POST /api/v1/task/{task_id}/cancel with "
            f"{second.status_code} ({said_second}). PiAPI documents cancelling only for pending tasks (and not "
            "for Framepack): a task that keeps running is still charged."
        )
        copy = type(second).__new__(type(second))
        copy.__dict__.update(second.__dict__)
        copy.message = self.redact(text)
        copy.args = (copy.message,)
        return copy
