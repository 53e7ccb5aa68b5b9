"""`AsyncClient`: the request core on `httpx.AsyncClient`, for the widget and many tasks at once.

It only sends, sleeps and reads the clock; every decision is the core's (`_core`,
`_polling`, `_downloads`). Its pool is httpx's, limited by `httpx.Limits` for API calls and
video downloads alike. API calls also queue at a semaphore of the pool's size before they
reach httpx: httpcore's pool looks through every queued request each time a connection
frees up, so a hundred concurrent waits queued inside it cost CPU on every hand-over,
while queued here they cost nothing until a connection is theirs. Its twin is `_sync`.

A connection belongs to the event loop that opened it, and one kernel may run more than one:
JupyterLab (4.4 and later) sends a widget's messages over a kernel subshell, a thread with
its own loop, except those sent before the subshell is up, which the main loop runs. So a
client that made its own pool keeps one pool (and one semaphore) per loop it runs on: the
first loop's is `_http`, another loop's is made when that loop first calls.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import APIError, APIStatusError, AuthenticationError
from ..task import Task
from ._core import SEND_OPTIONS, BaseClient
from ._downloads import AtomicVideoFile, after_download_exception, after_download_response, download_request, download_target
from ._polling import PollStrategy, check_expected_seconds
from ._retry import RequestSpec, Step
from ._settings import ClientArgumentError, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, POOL_LIMITS, POOL_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput

__all__ = ["AsyncClient"]

OnUpdate = Callable[[Task], Any]


class AsyncClient(BaseClient):
    """The same client for asyncio, on `httpx.AsyncClient`; every method is a coroutine.

    Many tasks can be awaited at once through one AsyncClient (e.g. with asyncio.gather).
    `on_update` may be a plain function or a coroutine function. Arguments as `Client`.
    Like every `httpx.AsyncClient`, it belongs to the event loop it first ran on (the
    kernel's, in Jupyter); a script that calls `asyncio.run()` twice makes one per run.
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
        allow_http: bool | None = None,
        audience: str = "python",
    ) -> None:
        super().__init__(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, upload_url=upload_url, poll=poll,
            allow_http=allow_http, audience=audience,
        )
        if http_client is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, limits=POOL_LIMITS)
            self._owns_http = True
        elif isinstance(http_client, httpx.AsyncClient):
            self._http = http_client
            self._owns_http = False
        else:
            raise ClientArgumentError(
                "http_client must be an httpx.AsyncClient for AsyncClient (use Client for httpx.Client).")
        self._gate = asyncio.Semaphore(POOL_SIZE)  # API calls in flight at once (see the module docstring)
        self._home: "weakref.ref[asyncio.AbstractEventLoop] | None" = None  # the loop `_http` belongs to
        # The pools of other loops (see the module docstring): loop -> (httpx client, semaphore).
        self._elsewhere: weakref.WeakKeyDictionary[Any, tuple[httpx.AsyncClient, asyncio.Semaphore]]
        self._elsewhere = weakref.WeakKeyDictionary()
        self._pools_lock = threading.Lock()
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic

    # -- the pool of the running loop
    def _pool(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The connection pool and semaphore of the running loop (a given http_client is used as is)."""
        if not self._owns_http:
            return self._http, self._gate
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            if self._home is None:
                self._home = weakref.ref(loop)
            if self._home() is loop:
                return self._http, self._gate
            pool = self._elsewhere.get(loop)
            if pool is None:
                pool = self._elsewhere[loop] = (httpx.AsyncClient(timeout=self.timeout, limits=POOL_LIMITS),
                                                asyncio.Semaphore(POOL_SIZE))
            return pool

    # -- lifecycle
    async def close(self) -> None:
        """Close the connection pools (only those this client created)."""
        if not self._owns_http:
            return
        here = asyncio.get_running_loop()
        with self._pools_lock:
            home = self._home() if self._home is not None else here
            pools = [(home, self._http), *((loop, pool[0]) for loop, pool in self._elsewhere.items())]
            self._elsewhere.clear()
        for loop, http in pools:
            if loop is here or loop is None:
                await http.aclose()
            elif not loop.is_closed() and loop.is_running():  # its connections close on their own loop
                asyncio.run_coroutine_threadsafe(http.aclose(), loop)

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
        reached = False  # an earlier attempt of a keyed create may have reached the server
        while True:
            http, gate = self._pool()
            request = self._build_request(http, spec, timeout)
            try:
                async with gate:
                    response = await http.send(request, **SEND_OPTIONS)  # never follows a redirect
            except httpx.TransportError as exc:
                step = self._after_exception(spec, request, exc, attempt, max_retries, reached)
            else:
                step = self._after_response(spec, request, response, attempt, max_retries, reached)
            reached = reached or step.reached
            if step.retry_in is not None:
                await self._sleep(step.retry_in)
                attempt += 1
                continue
            if step.error is not None:
                raise step.error from None
            return step.value

    # -- API calls
    async def create_task(self, input: "FramepackInput | dict[str, Any]", *, idempotency_key: str | None = None,
                          ) -> Task:
        """Submit one generation; returns the pending Task (see Client.create_task: toward the
        classroom service it carries `idempotency_key`, a run's id, and may be resent with it)."""
        key = self._idempotency_key(idempotency_key)
        uploaded = {}
        for job in self._upload_jobs(input):
            if self._goes_inline(job):
                continue
            try:
                uploaded[job.field] = await self._send(self._upload_spec(job))
            except AuthenticationError as exc:  # no uploads on this plan: inline when it fits
                if not self._inline_instead(exc, job):
                    raise
        return await self._send(self._create_spec(input, uploaded, key))

    async def get_task(self, task_id: "str | Task") -> Task:
        return await self._send(self._get_spec(self._task_id(task_id)))

    async def cancel(self, task_id: "str | Task") -> Task | None:
        """Ask PiAPI to cancel a task (see Client.cancel: pending tasks only, a running one is
        still charged; DELETE, then POST .../cancel when the first route is refused)."""
        first, second = self._cancel_specs(self._task_id(task_id))
        try:
            task = await self._send(first)
        except APIStatusError as refused:
            if not self._cancel_falls_back(refused):
                raise
            try:
                task = await self._send(second)
            except APIStatusError as again:
                raise self._cancel_refused(refused, again, second.task_id or "") from None
            self._cancel_worked(second)
        return task

    async def account_info(self) -> dict:
        """See Client.account_info (through the classroom service: the class budget)."""
        return await self._send(self._account_spec())

    async def share_with_class(self, task_id: "str | Task", shared: bool = True) -> Task:
        """Show the task's video in the class gallery, or take it out (see Client.share_with_class)."""
        self._class_only("share_with_class()")
        return await self._send(self._share_spec(self._task_id(task_id), shared))

    async def class_gallery(self) -> list[Task]:
        """The runs the class shared, newest first (see Client.class_gallery)."""
        self._class_only("class_gallery()")
        return await self._send(self._gallery_spec())

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
            if waiter.is_final(waiter.last):
                return waiter.finish(waiter.last)
        sleep_first = waiter.last is not None
        while True:
            if sleep_first:
                await self._sleep(waiter.next_delay())
            sleep_first = True
            waiter.gets += 1
            spec, timeout = self._wait_spec(waiter)
            try:
                task = await self._send(spec, max_retries=0, timeout=timeout)
            except APIError as exc:
                waiter.on_error(exc)
                continue
            if waiter.observe(task):
                await self._notify(on_update, task)
            if waiter.is_final(task):
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
        """Save the video atomically, without the API key, through the same pool (see Client.download)."""
        url, dest = download_target(task, path)
        attempt = 0
        while True:
            sink: AtomicVideoFile | None = None
            step: Step
            try:
                http, _gate = self._pool()
                request = download_request(http, url, self.timeout)
                response = await http.send(request, stream=True, follow_redirects=True)
                try:
                    step = after_download_response(url, response, attempt, max_retries=self.max_retries, rng=self._random)
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
                step = after_download_exception(
                    url, exc, attempt, max_retries=self.max_retries, rng=self._random, redact=self._redact
                )
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
            if step.retry_in is not None:
                await self._sleep(step.retry_in)
                attempt += 1
                continue
            raise step.error from None  # type: ignore[misc]
