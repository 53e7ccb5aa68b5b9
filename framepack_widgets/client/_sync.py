"""`Client`: the request core on `httpx.Client`, for scripts and blocking notebook cells.

A real `httpx.Client`, not the async client run on an event loop, so it works inside
Jupyter where a loop is always running. It only sends, sleeps and reads the clock; every
decision is the core's (`_core`, `_polling`, `_downloads`). Its twin is `_async`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import APIError, APIStatusError, AuthenticationError
from ..task import Task
from ._core import SEND_OPTIONS, BaseClient
from ._downloads import AtomicVideoFile, after_download_exception, after_download_response, download_request, download_target
from ._polling import PollStrategy, check_expected_seconds
from ._retry import RequestSpec, Step
from ._settings import ClientArgumentError, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, POOL_LIMITS

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput

__all__ = ["Client"]

OnUpdate = Callable[[Task], Any]


class Client(BaseClient):
    """Synchronous PiAPI Framepack client on `httpx.Client`.

    `api_key` / `base_url` default to PIAPI_API_KEY / PIAPI_BASE_URL (else https://api.piapi.ai).
    `timeout` is the read/write timeout per request (connecting gets 10 s); `max_retries`
    how often reading calls are retried (creates only when no task can have been made);
    `poll` a PollStrategy (or a number of seconds) used by `wait()`. An `http_client` you
    pass is used as-is and not closed by `close()`. A key never goes in clear text to another
    machine: a plain http:// `base_url` that is not this machine's is refused unless
    `allow_http=True` (or PIAPI_ALLOW_HTTP=1). A `base_url` with `user:password@` (a proxy)
    is shown everywhere without them. `audience="cli"` words every message for a terminal
    (options and variables, never a Python call), as the `framepack` command does.

    Test hooks: `_sleep` (retry and poll sleeps) and `_clock` (the wait deadline) can be
    replaced, e.g. `client._sleep = recorded.append` to run retries without waiting.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: "float | httpx.Timeout | None" = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        upload_url: str | None = None,
        http_client: httpx.Client | None = None,
        poll: "PollStrategy | float | None" = None,
        allow_http: bool | None = None,
        audience: str = "python",
    ) -> None:
        super().__init__(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url, poll=poll,
            allow_http=allow_http, audience=audience,
        )
        if http_client is None:
            self._http = httpx.Client(timeout=self.timeout, limits=POOL_LIMITS)
            self._owns_http = True
        elif isinstance(http_client, httpx.Client):
            self._http = http_client
            self._owns_http = False
        else:
            raise ClientArgumentError(
                "http_client must be an httpx.Client for Client (use AsyncClient for httpx.AsyncClient).")
        self._sleep: Callable[[float], Any] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    # -- lifecycle
    def close(self) -> None:
        """Close the connection pool (only if this client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the one place requests are sent
    def _send(self, spec: RequestSpec, *, max_retries: int | None = None, timeout: httpx.Timeout | None = None) -> Any:
        attempt = 0
        reached = False  # an earlier attempt of a keyed create may have reached the server
        while True:
            request = self._build_request(self._http, spec, timeout)
            try:
                response = self._http.send(request, **SEND_OPTIONS)  # never follows a redirect
            except httpx.TransportError as exc:
                step = self._after_exception(spec, request, exc, attempt, max_retries, reached)
            else:
                step = self._after_response(spec, request, response, attempt, max_retries, reached)
            reached = reached or step.reached
            if step.retry_in is not None:
                self._sleep(step.retry_in)
                attempt += 1
                continue
            if step.error is not None:
                raise step.error from None
            return step.value

    # -- API calls
    def create_task(self, input: "FramepackInput | dict[str, Any]", *, idempotency_key: str | None = None) -> Task:
        """Submit one generation; returns the pending Task. Never sends the create twice
        unless the first certainly created nothing (else SubmissionUnknownError), or the
        server honours Idempotency-Key (the classroom service): there the create carries
        `idempotency_key` (a run's id; else one made for this call) and may be resent with it."""
        key = self._idempotency_key(idempotency_key)
        uploaded = {}
        for job in self._upload_jobs(input):
            if self._goes_inline(job):
                continue
            try:
                uploaded[job.field] = self._send(self._upload_spec(job))
            except AuthenticationError as exc:  # no uploads on this plan: inline when it fits
                if not self._inline_instead(exc, job):
                    raise
        return self._send(self._create_spec(input, uploaded, key))

    def get_task(self, task_id: "str | Task") -> Task:
        """One fresh snapshot of a task (retried on transient errors)."""
        return self._send(self._get_spec(self._task_id(task_id)))

    def cancel(self, task_id: "str | Task") -> Task | None:
        """Ask PiAPI to cancel a task. PiAPI documents cancelling for some models only (not
        Framepack) and only while the task is pending: a task that keeps running is still
        charged. Tries `DELETE /api/v1/task/{id}` (the docs), then `POST .../cancel` (PiAPI's
        CLI) when the first is refused as a route (404/405). Returns the task snapshot when
        the answer contains one (its status says whether it was cancelled); a refusal raises
        with what PiAPI answered."""
        first, second = self._cancel_specs(self._task_id(task_id))
        try:
            task = self._send(first)
        except APIStatusError as refused:
            if not self._cancel_falls_back(refused):
                raise
            try:
                task = self._send(second)
            except APIStatusError as again:
                raise self._cancel_refused(refused, again, second.task_id or "") from None
            self._cancel_worked(second)
        return task

    def account_info(self) -> dict:
        """The account's credits/balance as PiAPI reports them (the envelope's `data`); through
        the classroom service, the student's class budget (`budget`: total, spent, reserved, left)."""
        return self._send(self._account_spec())

    def share_with_class(self, task_id: "str | Task", shared: bool = True) -> Task:
        """Show the task's video in the class gallery (`shared=False` takes it out again);
        through the classroom service only (else UsageError). Returns the task as the service
        now sees it (`task.raw["class_service"]["shared"]`)."""
        self._class_only("share_with_class()")
        return self._send(self._share_spec(self._task_id(task_id), shared))

    def class_gallery(self) -> list[Task]:
        """The runs the class shared, newest first (the classroom service only, else UsageError);
        each task's `raw["class_service"]` names its owner."""
        self._class_only("class_gallery()")
        return self._send(self._gallery_spec())

    def wait(
        self,
        task_or_id: "Task | str",
        *,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        expected_seconds: float | None = None,
    ) -> Task:
        """Poll until the task ends; returns the completed Task.

        Raises TaskFailedError (failed/cancelled) or TaskTimeoutError after `timeout`
        seconds (None: one hour). Transient errors (429, 5xx, network) do not end the
        wait. Through the classroom service each GET is held there until the task changes
        (a long poll), so the end is seen at once, with no sleeping between GETs.
        `on_update(task)` is called for the first snapshot and each change.
        `expected_seconds`: optional hint, how long from now the task will probably take
        (e.g. learned from earlier runs); the default poll strategy uses it to poll less
        early and densely near the expected end when the API reports no percent.
        """
        waiter = self._waiter(task_or_id, timeout, self._clock, expected_seconds)
        if waiter.last is not None:
            if on_update is not None:
                on_update(waiter.last)
            if waiter.is_final(waiter.last):
                return waiter.finish(waiter.last)
        sleep_first = waiter.last is not None
        while True:
            if sleep_first:
                self._sleep(waiter.next_delay())
            sleep_first = True
            waiter.gets += 1
            spec, timeout = self._wait_spec(waiter)
            try:
                task = self._send(spec, max_retries=0, timeout=timeout)
            except APIError as exc:
                waiter.on_error(exc)
                continue
            if waiter.observe(task) and on_update is not None:
                on_update(task)
            if waiter.is_final(task):
                return waiter.finish(task)

    def generate(
        self,
        input: "FramepackInput | dict[str, Any]",
        *,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        expected_seconds: float | None = None,
    ) -> Task:
        """create_task + wait, under one deadline; returns the completed Task.
        `expected_seconds` (optional): the expected duration from now, passed to wait()."""
        expected_seconds = check_expected_seconds(expected_seconds)  # before paying for a task
        started = self._clock()
        task = self.create_task(input)
        elapsed = self._clock() - started
        remaining = None if timeout is None else max(0.0, timeout - elapsed)
        expected = None if expected_seconds is None else max(0.0, expected_seconds - elapsed)
        return self.wait(task, timeout=remaining, on_update=on_update, expected_seconds=expected)

    def download(self, task: "Task | str", path: "str | os.PathLike[str]") -> Path:
        """Save the task's video (or a video URL) to `path` (a file, or a folder) atomically.

        The request carries no API key and goes through the same connection pool as the
        API calls. Refuses anything that is not an MP4/WebM. Returns the path written.
        """
        url, dest = download_target(task, path)
        attempt = 0
        while True:
            sink: AtomicVideoFile | None = None
            step: Step
            try:
                request = download_request(self._http, url, self.timeout)
                response = self._http.send(request, stream=True, follow_redirects=True)
                try:
                    step = after_download_response(url, response, attempt, max_retries=self.max_retries, rng=self._random)
                    if step.value:
                        sink = AtomicVideoFile(dest)
                        for chunk in response.iter_bytes():
                            sink.write(chunk)
                        return sink.commit(url)
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                if sink is not None:
                    sink.abort()
                step = after_download_exception(
                    url, exc, attempt, max_retries=self.max_retries, rng=self._random, redact=self._redact
                )
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
            if step.retry_in is not None:
                self._sleep(step.retry_in)
                attempt += 1
                continue
            raise step.error from None  # type: ignore[misc]
