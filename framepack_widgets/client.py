"""`Client` and `AsyncClient`: thin I/O shells around `_base_client.BaseClient`.

Each shell only sends requests, reads clocks and sleeps; every decision (what to send,
what an answer means, whether to retry, how long to wait) is made in `_base_client`.
`Client` is a real `httpx.Client`, not the async client run on an event loop, so it
works inside Jupyter where a loop is already running (no nest_asyncio).

    from framepack_widgets import Client, FramepackInput
    with Client() as client:                      # PIAPI_API_KEY from the environment
        task = client.generate(FramepackInput("a cat turns its head", "cat.jpg"))
        client.download(task, "cat.mp4")

`create_task()` takes a `FramepackInput`, or a plain dict that is the request's `input`
object (`prompt`, `start_image` as an http(s) URL or base64, optional `end_image`,
`negative_prompt`, `duration`), checked only minimally.

Test hooks: `_sleep` (retry and poll sleeps) and `_clock` (the wait deadline) can be
replaced, e.g. `client._sleep = recorded.append` to run retries without waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._base_client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AdaptivePoll,
    AtomicVideoFile,
    BaseClient,
    ExponentialPoll,
    FixedPoll,
    PollStrategy,
    RequestSpec,
    Step,
    check_expected_seconds,
)
from .errors import APIError
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from .inputs import FramepackInput

__all__ = ["Client", "AsyncClient", "PollStrategy", "AdaptivePoll", "FixedPoll", "ExponentialPoll"]

OnUpdate = Callable[[Task], Any]
_POOL_SIZE = 6  # connections in AsyncClient's own pool, like a browser's per host (see AsyncClient.__init__)


def _check_http_client(http_client: Any, expected: type, name: str) -> None:
    if not isinstance(http_client, expected):
        raise TypeError(f"http_client must be an {expected.__module__}.{expected.__name__} for {name}.")


class Client(BaseClient):
    """Synchronous PiAPI Framepack client on `httpx.Client`.

    `api_key` / `base_url` default to PIAPI_API_KEY / PIAPI_BASE_URL (else https://api.piapi.ai).
    `timeout` is the read/write timeout per request (connecting gets 10 s); `max_retries`
    how often reading calls are retried (creates only when no task can have been made);
    `poll` a PollStrategy (or a number of seconds) used by `wait()`. An `http_client` you
    pass is used as-is and not closed by `close()`.
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
    ) -> None:
        super().__init__(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url, poll=poll
        )
        if http_client is None:
            self._http = httpx.Client(timeout=self.timeout)
            self._owns_http = True
        else:
            _check_http_client(http_client, httpx.Client, "Client (use AsyncClient for httpx.AsyncClient)")
            self._http = http_client
            self._owns_http = False
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
        while True:
            request = self._http.build_request(
                spec.method, spec.http_url, json=spec.json, headers=self._headers(spec), timeout=self._timeout_for(timeout)
            )
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                step = self._after_exception(spec, request, exc, attempt, max_retries)
            else:
                step = self._after_response(spec, request, response, attempt, max_retries)
            if step.retry_in is not None:
                self._sleep(step.retry_in)
                attempt += 1
                continue
            if step.error is not None:
                raise step.error from step.cause
            return step.value

    # -- API calls
    def create_task(self, input: "FramepackInput | dict[str, Any]") -> Task:
        """Submit one generation; returns the pending Task. Never sends the create twice
        unless the first certainly created nothing (else SubmissionUnknownError)."""
        jobs = self._upload_jobs(input)
        uploaded = {job.field: self._send(self._upload_spec(job)) for job in jobs}
        return self._send(self._create_spec(self._create_body(self._create_payload(input, uploaded))))

    def get_task(self, task_id: "str | Task") -> Task:
        """One fresh snapshot of a task (retried on transient errors)."""
        return self._send(self._get_spec(self._task_id(task_id)))

    def cancel(self, task_id: "str | Task") -> Task | None:
        """Ask PiAPI to cancel a task (documented for pending tasks of some models only).
        Returns the task snapshot when the answer contains one."""
        return self._send(self._cancel_spec(self._task_id(task_id)))

    def account_info(self) -> dict:
        """The account's credits/balance as PiAPI reports them (the envelope's `data`)."""
        return self._send(self._account_spec())

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
        wait. `on_update(task)` is called for the first snapshot and each change.
        `expected_seconds`: optional hint, how long from now the task will probably take
        (e.g. learned from earlier runs); the default poll strategy uses it to poll less
        early and densely near the expected end when the API reports no percent.
        """
        waiter = self._waiter(task_or_id, timeout, self._clock, expected_seconds)
        if waiter.last is not None:
            if on_update is not None:
                on_update(waiter.last)
            if waiter.last.is_terminal:
                return waiter.finish(waiter.last)
        sleep_first = waiter.last is not None
        spec = self._get_spec(waiter.task_id)
        while True:
            if sleep_first:
                self._sleep(waiter.next_delay())
            sleep_first = True
            waiter.gets += 1
            try:
                task = self._send(spec, max_retries=0, timeout=waiter.request_timeout(self.timeout))
            except APIError as exc:
                waiter.on_error(exc)
                continue
            if waiter.observe(task) and on_update is not None:
                on_update(task)
            if task.is_terminal:
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

        The request carries no API key. Refuses anything that is not an MP4/WebM.
        Returns the path written.
        """
        url, dest = self._download_target(task, path)
        attempt = 0
        while True:
            sink: AtomicVideoFile | None = None
            try:
                response = self._http.send(self._download_request(self._http, url), stream=True, follow_redirects=True)
                try:
                    step = self._download_status(url, response, attempt)
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
                step = self._download_exception(url, exc, attempt)
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
            if step.retry_in is not None:
                self._sleep(step.retry_in)
                attempt += 1
                continue
            raise step.error from step.cause  # type: ignore[misc]


class AsyncClient(BaseClient):
    """The same client for asyncio, on `httpx.AsyncClient`; every method is a coroutine.

    Many tasks can be awaited at once through one AsyncClient (e.g. with asyncio.gather).
    `on_update` may be a plain function or a coroutine function.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: "float | httpx.Timeout | None" = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        upload_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        poll: "PollStrategy | float | None" = None,
    ) -> None:
        super().__init__(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url, poll=poll
        )
        if http_client is None:
            # Many concurrent waits share a few kept-alive connections instead of opening
            # (and TLS-handshaking) new ones each round. LeanTransport does the HTTP/1.1 on
            # plain asyncio at a fraction of httpcore's CPU per request (bench_concurrency);
            # with a proxy configured, httpx's own transport, which honours it, is used.
            from ._transport import new_async_http

            self._http = new_async_http(self.timeout, _POOL_SIZE)
            self._owns_http = True
        else:
            _check_http_client(http_client, httpx.AsyncClient, "AsyncClient (use Client for httpx.Client)")
            self._http = http_client
            self._owns_http = False
        import asyncio

        # At most _POOL_SIZE API calls in flight: the rest wait here (cheap), so a hundred
        # concurrent waits share a handful of connections.
        self._gate = asyncio.Semaphore(_POOL_SIZE) if self._owns_http else None
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic

    # -- lifecycle
    async def close(self) -> None:
        """Close the connection pool (only if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the one place requests are sent
    async def _send(
        self, spec: RequestSpec, *, max_retries: int | None = None, timeout: httpx.Timeout | None = None
    ) -> Any:
        attempt = 0
        while True:
            request = self._http.build_request(
                spec.method, spec.http_url, json=spec.json, headers=self._headers(spec), timeout=self._timeout_for(timeout)
            )
            try:
                if self._gate is None:
                    response = await self._http.send(request)
                else:
                    async with self._gate:
                        response = await self._http.send(request)
            except httpx.TransportError as exc:
                step = self._after_exception(spec, request, exc, attempt, max_retries)
            else:
                step = self._after_response(spec, request, response, attempt, max_retries)
            if step.retry_in is not None:
                await self._sleep(step.retry_in)
                attempt += 1
                continue
            if step.error is not None:
                raise step.error from step.cause
            return step.value

    # -- API calls
    async def create_task(self, input: "FramepackInput | dict[str, Any]") -> Task:
        """Submit one generation; returns the pending Task (see Client.create_task)."""
        jobs = self._upload_jobs(input)
        uploaded = {}
        for job in jobs:
            uploaded[job.field] = await self._send(self._upload_spec(job))
        return await self._send(self._create_spec(self._create_body(self._create_payload(input, uploaded))))

    async def get_task(self, task_id: "str | Task") -> Task:
        return await self._send(self._get_spec(self._task_id(task_id)))

    async def cancel(self, task_id: "str | Task") -> Task | None:
        return await self._send(self._cancel_spec(self._task_id(task_id)))

    async def account_info(self) -> dict:
        return await self._send(self._account_spec())

    async def _notify(self, on_update: OnUpdate | None, task: Task) -> None:
        if on_update is None:
            return
        result = on_update(task)
        if hasattr(result, "__await__"):
            await result

    async def wait(
        self,
        task_or_id: "Task | str",
        *,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        expected_seconds: float | None = None,
    ) -> Task:
        """Poll until the task ends (see Client.wait); `on_update` may be sync or async."""
        waiter = self._waiter(task_or_id, timeout, self._clock, expected_seconds)
        if waiter.last is not None:
            await self._notify(on_update, waiter.last)
            if waiter.last.is_terminal:
                return waiter.finish(waiter.last)
        sleep_first = waiter.last is not None
        spec = self._get_spec(waiter.task_id)
        while True:
            if sleep_first:
                await self._sleep(waiter.next_delay())
            sleep_first = True
            waiter.gets += 1
            try:
                task = await self._send(spec, max_retries=0, timeout=waiter.request_timeout(self.timeout))
            except APIError as exc:
                waiter.on_error(exc)
                continue
            if waiter.observe(task):
                await self._notify(on_update, task)
            if task.is_terminal:
                return waiter.finish(task)

    async def generate(
        self,
        input: "FramepackInput | dict[str, Any]",
        *,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
        expected_seconds: float | None = None,
    ) -> Task:
        expected_seconds = check_expected_seconds(expected_seconds)  # before paying for a task
        started = self._clock()
        task = await self.create_task(input)
        elapsed = self._clock() - started
        remaining = None if timeout is None else max(0.0, timeout - elapsed)
        expected = None if expected_seconds is None else max(0.0, expected_seconds - elapsed)
        return await self.wait(task, timeout=remaining, on_update=on_update, expected_seconds=expected)

    async def download(self, task: "Task | str", path: "str | os.PathLike[str]") -> Path:
        """Save the video atomically, without the API key (see Client.download)."""
        url, dest = self._download_target(task, path)
        attempt = 0
        while True:
            sink: AtomicVideoFile | None = None
            step: Step
            try:
                response = await self._http.send(
                    self._download_request(self._http, url), stream=True, follow_redirects=True
                )
                try:
                    step = self._download_status(url, response, attempt)
                    if step.value:
                        sink = AtomicVideoFile(dest)
                        async for chunk in response.aiter_bytes():
                            sink.write(chunk)
                        return sink.commit(url)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                if sink is not None:
                    sink.abort()
                step = self._download_exception(url, exc, attempt)
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
            if step.retry_in is not None:
                await self._sleep(step.retry_in)
                attempt += 1
                continue
            raise step.error from step.cause  # type: ignore[misc]
