"""The money rule: after each attempt, whether to return, raise, or try again.

A create request is retried only when it certainly did not create a task (the connection
never opened, or the API answered 429/503); otherwise `SubmissionUnknownError` is raised and
nothing is resent. An answer's `code` counts as much as its HTTP status: an HTTP 200
envelope with code 404 is a 404. A create's error answer that still names a task id means a
task exists: the client keeps that id and follows it, whatever the code says. A redirect is
never followed (it would carry the key elsewhere) and never a certain refusal: on a create,
its outcome is unknown.

The one exception: a create sent with an Idempotency-Key to a server that honours it (the
classroom service) may be sent again with the same key, for the server answers a repeated
key with the first create's outcome: after a transport error (also after the request went
out), a 502/503/504 that does not say the outcome is unknown (`SUBMISSION_HEADER: unknown`),
a 409 (the first is still being forwarded) or a 429, honouring Retry-After. Never after the
server said the outcome is unknown, nor after any other 4xx (a refusal, which the server
gives only for a key it has no create for). Out of tries after an attempt that may have
reached the server, the outcome is unknown.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx

from ..constants import SUBMISSION_HEADER
from ._envelope import SUCCESS_CODES, api_message, envelope_code, http_like, task_in
from ._redaction import redact_value, short_url
from ._retry import (
    RETRYABLE_CREATE_STATUS,
    TRANSIENT_TRANSPORT,
    RequestSpec,
    Step,
    backoff_delay,
    never_connected,
    never_sent,
    parse_retry_after,
    read_retryable_status,
)
from ._settings import Settings
from ._texts import ErrorTexts

__all__ = ["Decisions", "KEYED_RETRY_STATUS"]

logger = logging.getLogger("framepack_widgets")

#: A keyed create answered with these is sent again with the same key (see the module docstring);
#: after the first three it may have reached PiAPI, so out of tries its outcome is unknown.
KEYED_RETRY_STATUS = frozenset({409, 429, 502, 503, 504})
_KEYED_MAY_HAVE_REACHED = frozenset({409, 502, 504})


class Decisions:
    """Every decision after one attempt, for creates, reads, uploads and cancels alike."""

    def __init__(self, settings: Settings, texts: ErrorTexts, rng: random.Random) -> None:
        self._settings = settings
        self._texts = texts
        self._random = rng

    def after_response(
        self, spec: RequestSpec, request: httpx.Request, response: httpx.Response, attempt: int, retries: int,
        reached: bool = False,
    ) -> Step:
        """`reached`: an earlier attempt of this keyed create may have reached the server."""
        status = response.status_code
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s (attempt %d)", spec.method, short_url(str(request.url)), status, attempt + 1)
        if status >= 400:
            try:
                body = redact_value(response.json(), self._settings.api_key)
            except (ValueError, RecursionError):  # not JSON, or JSON nested beyond reason
                body = None
            return self.after_error(spec, request, response, body, status, attempt, retries, reached=reached)
        if 300 <= status < 400:  # never followed: it would carry the key to another address
            if spec.creates:
                return Step(error=self._texts.submission_unknown(request, self._texts.redirect_reason(request, response)))
            return Step(error=self._texts.redirected(spec, request, response))
        if status < 200 or status >= 300:  # 1xx: not an answer we understand
            return self.malformed(spec, request, attempt, retries, f"an unexpected HTTP {status} answer")
        try:
            # The API may echo the key (in an error, in logs): it never gets past this line, so
            # never into a Task, a run, the store, the widget or an export.
            body = redact_value(response.json(), self._settings.api_key)
        except (ValueError, RecursionError):
            return self.malformed(spec, request, attempt, retries, "an answer that is not valid JSON")
        if not isinstance(body, Mapping):
            return self.malformed(spec, request, attempt, retries, "an answer that is not a JSON object")
        code = envelope_code(body)
        if code is not None and code not in SUCCESS_CODES:  # HTTP 200, but the envelope says otherwise
            return self.after_error(spec, request, response, body, code, attempt, retries, in_envelope=True,
                                    reached=reached)
        try:
            value = spec.parse(body) if spec.parse else body
        except ValueError as exc:
            what = f"an answer the API's format does not explain ({exc})"
            return self.malformed(spec, request, attempt, retries, what)
        return Step(value=value)

    def after_error(
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
        reached: bool = False,
    ) -> Step:
        """An error answer: an HTTP error status, or an HTTP 200 whose envelope `code` is one.

        The money rule first: a create's answer that names a task means a task exists, so
        the run keeps that id and follows it (never resent, never "nothing was charged").
        """
        texts = self._texts
        if spec.creates:
            named = task_in(body)
            if named is not None:
                logger.warning(
                    "%s answered the create request with %s (%s) but named task %s: following that task.",
                    texts.service, f"code {code}" if in_envelope else f"HTTP {code}",
                    texts.redact(api_message(body)), named.task_id,
                )
                return Step(value=named)
        if spec.creates and spec.idempotency_key is not None and http_like(code):
            return self._keyed_create_error(spec, request, response, body, code, attempt, retries, in_envelope, reached)
        if not http_like(code):  # PiAPI's own numbers (10002, -1, ...): no HTTP meaning to lean on
            if spec.creates:
                return Step(error=texts.submission_unknown(
                    request, f"the server answered code {code}: {api_message(body)}, without a task id"))
            return Step(error=texts.odd_code(spec, request, body, code))
        retry_after = parse_retry_after(response.headers) if code in (429, 503) else None
        can_retry = attempt < retries and (
            code in RETRYABLE_CREATE_STATUS if spec.creates else read_retryable_status(code)
        )
        if can_retry:
            delay = retry_after if retry_after is not None else backoff_delay(attempt, rng=self._random)
            return Step(retry_in=delay)
        if spec.creates and code >= 500 and code != 503:
            answered = f"code {code} in an HTTP 200 answer" if in_envelope else str(code)
            return Step(error=texts.submission_unknown(request, f"the server answered {answered}"))
        return Step(error=texts.status_error(spec, request, response, body, retry_after, attempt, code, in_envelope))

    def _keyed_create_error(
        self,
        spec: RequestSpec,
        request: httpx.Request,
        response: httpx.Response,
        body: Any,
        code: int,
        attempt: int,
        retries: int,
        in_envelope: bool,
        reached: bool,
    ) -> Step:
        """An error answer to a create sent with an Idempotency-Key the server honours."""
        texts = self._texts
        if code == 502 and response.headers.get(SUBMISSION_HEADER, "").strip().lower() == "unknown":
            return Step(error=texts.submission_unknown(
                request, f"the class service could not learn whether PiAPI made it: {api_message(body, response)}",
                upstream=True))
        if code in KEYED_RETRY_STATUS:
            here = code in _KEYED_MAY_HAVE_REACHED
            if attempt < retries:
                delay = parse_retry_after(response.headers) if code in (409, 429, 503) else None
                if delay is None:
                    delay = backoff_delay(attempt, rng=self._random)
                return Step(retry_in=delay, reached=here)
            if reached or here:
                return Step(error=texts.submission_unknown(
                    request, f"the last of {attempt + 1} tries was answered {code}: {api_message(body, response)}"))
        elif code >= 500:
            return Step(error=texts.submission_unknown(request, f"the server answered {code}"))
        if reached and not (isinstance(body, Mapping) and envelope_code(body) == code):
            # A refusal speaks for the key only when the service gave it (its envelope), not a proxy's page.
            return Step(error=texts.submission_unknown(
                request, f"an earlier try got no answer, and the last one was refused with {code} by something "
                         "other than the class service"))
        retry_after = parse_retry_after(response.headers) if code in (429, 503) else None
        return Step(error=texts.status_error(spec, request, response, body, retry_after, attempt, code, in_envelope))

    def malformed(self, spec: RequestSpec, request: httpx.Request, attempt: int, retries: int, what: str) -> Step:
        if spec.creates:
            return Step(error=self._texts.submission_unknown(request, f"the server sent {what}"))
        if attempt < retries:
            return Step(retry_in=backoff_delay(attempt, rng=self._random))
        return Step(error=self._texts.malformed(spec, request, what))

    def after_exception(
        self, spec: RequestSpec, request: httpx.Request, exc: BaseException, attempt: int, retries: int,
        reached: bool = False,
    ) -> Step:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s (attempt %d)", spec.method, short_url(str(request.url)), type(exc).__name__, attempt + 1
            )
        if not isinstance(exc, httpx.TransportError):
            return Step(error=exc)
        if spec.creates and spec.idempotency_key is not None:
            here = not never_sent(exc)
            refused_here = never_sent(exc) and not never_connected(exc)  # it would be refused here again
            if attempt < retries and not refused_here:
                return Step(retry_in=backoff_delay(attempt, rng=self._random), reached=here)
            if reached or here:
                return Step(error=self._texts.submission_unknown(
                    request, f"no answer came back for it ({type(exc).__name__}, {attempt + 1} "
                             f"{'try' if attempt == 0 else 'tries'})"))
        elif spec.creates:
            if never_connected(exc) and attempt < retries:
                return Step(retry_in=backoff_delay(attempt, rng=self._random))
            if not never_sent(exc):
                return Step(
                    error=self._texts.submission_unknown(
                        request, f"the connection broke after the request went out: {type(exc).__name__}"
                    ),
                )
        elif attempt < retries and isinstance(exc, TRANSIENT_TRANSPORT):
            return Step(retry_in=backoff_delay(attempt, rng=self._random))
        return Step(error=self._texts.connection_error(spec, request, exc, attempt))
