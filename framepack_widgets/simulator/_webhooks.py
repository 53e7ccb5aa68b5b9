"""Webhooks: the simulator POSTs a task's envelope to the endpoint its create asked for.

PiAPI's unified API takes `config.webhook_config: {endpoint, secret}` on a create and POSTs
`{"timestamp": <unix seconds>, "data": <the task's data, as a GET returns it>}` to that
endpoint, with the secret verbatim in the `x-webhook-secret` header (no signature). This
module does the same when a task ends (completed, failed or cancelled): a task's status is
derived from its clock, so each watched task is looked at again when its clock says it ends
(and again shortly after while its video is still rendering), and sent once it is final.

Unverified against the live API, and kept easy to change: which status changes PiAPI
reports (stored copies of its page differ: created, log updates, output, completion; this
sends the final one), and its retries (community sources say every 5 s, 3 times: here
`retries` and `retry_seconds`). PiAPI demands a public HTTPS endpoint; the simulator also
delivers to plain http:// so that a service on loopback can be tested. Only the simulator
that made a task sends its webhook (another simulator over the same state folder does not).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ._clock import SimTask

__all__ = ["WEBHOOK_SECRET_HEADER", "WebhookDelivery", "WebhookSender", "webhook_target"]

logger = logging.getLogger("framepack_widgets.simulator")

#: The header PiAPI puts the create's `webhook_config.secret` in.
WEBHOOK_SECRET_HEADER = "x-webhook-secret"
#: Statuses after which a task changes no more (what a webhook reports).
_FINAL = ("completed", "failed", "cancelled")
#: While a task's clock says it ended but its video is still rendering, look again this often.
_RENDER_RECHECK_SECONDS = 0.02


@dataclass
class WebhookDelivery:
    """One webhook as the simulator sent it (for tests and benchmarks); never its secret."""

    task_id: str
    status: str
    endpoint: str
    attempts: int = 0
    http_status: int | None = None  # the endpoint's last answer; None when it never answered
    sent_at: float | None = None  # time.time() of the first attempt
    error: str | None = None


def webhook_target(task: SimTask) -> tuple[str, str] | None:
    """(endpoint, secret) of the task's `config.webhook_config`, or None when it asked for none."""
    hook = task.config_echo.get("webhook_config") if isinstance(task.config_echo, dict) else None
    if not isinstance(hook, dict):
        return None
    endpoint = str(hook.get("endpoint") or "").strip()
    if not endpoint.lower().startswith(("http://", "https://")):
        return None
    return endpoint, str(hook.get("secret") or "")


class WebhookSender:
    """Watches tasks that asked for a webhook and delivers each one's final envelope once.

    `data(task)` gives the envelope's data as a GET would (video URLs included). One timing
    thread waits for the next task due; deliveries run on a small pool so a slow endpoint
    delays no other task's webhook.
    """

    def __init__(
        self,
        data: Callable[[SimTask], dict[str, Any]],
        stopping: threading.Event,
        *,
        retries: int = 3,
        retry_seconds: float = 5.0,
        timeout: float = 10.0,
    ) -> None:
        self._data = data
        self._stopping = stopping
        self.retries = int(retries)
        self.retry_seconds = float(retry_seconds)
        self.timeout = float(timeout)
        self._due: list[tuple[int, int, SimTask]] = []  # (wall ns to look at it, tie-breaker, task)
        self._order = itertools.count()
        self._sent: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._deliveries: list[WebhookDelivery] = []

    # ---------------------------------------------------------------- what the simulator calls

    def watch(self, task: SimTask) -> None:
        """A new task: deliver its webhook when it ends (if its create asked for one)."""
        if webhook_target(task) is None:
            return
        self._schedule(task, task.clock_ends_ns)

    def changed(self, task: SimTask) -> None:
        """The task changed outside its clock (a cancel): look at it now."""
        if webhook_target(task) is not None:
            self._schedule(task, time.time_ns())

    def stop(self) -> None:
        with self._cond:
            self._due.clear()
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        with self._cond:
            return list(self._deliveries)

    # ---------------------------------------------------------------- timing

    def _schedule(self, task: SimTask, when_ns: int) -> None:
        with self._cond:
            if task.task_id in self._sent or self._stopping.is_set():
                return
            heapq.heappush(self._due, (when_ns, next(self._order), task))
            if self._thread is None:
                self._pool = ThreadPoolExecutor(4, thread_name_prefix="framepack-sim-webhook")
                self._thread = threading.Thread(target=self._run, name="framepack-sim-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if not self._due:
                    self._cond.wait(0.5)
                    continue
                when, _, task = self._due[0]
                wait = (when - time.time_ns()) / 1e9
                if wait > 0:
                    self._cond.wait(min(wait, 0.5))
                    continue
                heapq.heappop(self._due)
                if task.task_id in self._sent:
                    continue
                status = task.state()["status"]
                if status not in _FINAL:  # its clock ended but the video is still rendering
                    heapq.heappush(self._due, (time.time_ns() + int(_RENDER_RECHECK_SECONDS * 1e9),
                                               next(self._order), task))
                    continue
                self._sent.add(task.task_id)
                target = webhook_target(task)
                assert target is not None
                delivery = WebhookDelivery(task.task_id, status, target[0])
                self._deliveries.append(delivery)
                pool = self._pool
            if pool is not None:
                try:
                    pool.submit(self._deliver, task, target, delivery)
                except RuntimeError:  # the pool shut down: the simulator is stopping
                    return

    # ---------------------------------------------------------------- sending

    def _deliver(self, task: SimTask, target: tuple[str, str], delivery: WebhookDelivery) -> None:
        endpoint, secret = target
        body = json.dumps({"timestamp": int(time.time()), "data": self._data(task)},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        delivery.sent_at = time.time()
        for attempt in range(self.retries + 1):
            if attempt and self._stopping.wait(self.retry_seconds):
                return
            delivery.attempts = attempt + 1
            request = urllib.request.Request(endpoint, data=body, method="POST", headers={
                "Content-Type": "application/json", WEBHOOK_SECRET_HEADER: secret,
                "User-Agent": "FramepackSimulator/1 (webhook)"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - http(s) only
                    delivery.http_status = answer.status
                    delivery.error = None
                    return
            except urllib.error.HTTPError as exc:
                delivery.http_status, delivery.error = exc.code, f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    return  # the endpoint refused it: sending it again would be refused too
            except (OSError, ValueError) as exc:
                delivery.http_status, delivery.error = None, f"{type(exc).__name__}: {exc}"
        logger.info("webhook for task %s to %s failed after %d attempts (%s)", task.task_id, endpoint,
                    delivery.attempts, delivery.error)
