"""`ClassService`: the class's rules, apart from HTTP: budgets, idempotent creates, privacy.

The handlers (`_handlers`, `_teacher`) only read requests and write replies; every decision
is made here, on the store (`_store`, called in a thread pool), the upstream client
(`_upstream`) and the followers (`_follow`).

A create, in order: the body is checked (nothing unusable is reserved or forwarded); one
database transaction finds the Idempotency-Key's first create or reserves the price (or
refuses: paused, over budget, too many running); only then is it forwarded, once. PiAPI's
answer settles the reservation: a task (followed from now on), a refusal (released; the key
may be used again), or an unknown outcome (kept, shown to the teacher, never resent). A
repeated create with the same key and user gets the first one's outcome, waiting for it
while it is still being forwarded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from ..constants import MIN_DURATION, MODEL, TASK_TYPE
from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    InvalidInputError,
    SubmissionUnknownError,
)
from ..inputs import check_request_input
from ..task import Task
from ._follow import Changes, Followers
from ._money import dollars, price_micros
from ._options import ServiceOptions
from ._store import Store, TaskRow
from ._upstream import Upstream
from ._views import REPLAYED_HEADER, SUBMISSION_HEADER, Reply, envelope, error, task_data

__all__ = ["ClassService", "Identity"]

logger = logging.getLogger("framepack_widgets.service")

T = TypeVar("T")

#: How long a repeated create waits for the first one still being forwarded (then 409, try again).
IDEMPOTENT_WAIT_SECONDS = 60.0
#: The longest Idempotency-Key accepted (a run id is 32 characters).
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Identity:
    """Who is asking, as the hub says: a name, and whether they teach this class.

    `teacher` is what is already known; `check` asks the hub when it matters (a teacher's
    route, another student's task), so a student's own calls cost the hub nothing more.
    """

    name: str
    teacher: bool = False
    check: Callable[[], Awaitable[bool]] | None = field(default=None, compare=False, repr=False)

    async def is_teacher(self) -> bool:
        if self.teacher:
            return True
        return bool(await self.check()) if self.check is not None else False


class ClassService:
    """The service's state and rules; `start()` before use, `stop()` after."""

    def __init__(self, options: ServiceOptions, *, upstream: Upstream | None = None,
                 store: Store | None = None) -> None:
        self.options = options
        self._store = store
        self._upstream = upstream
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="framepack-service-db")
        self.changes = Changes()
        self._inflight: dict[str, asyncio.Event] = {}
        self.followers: Followers | None = None
        self.video_secret = ""
        self.webhook_secret = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> "ClassService":
        if self._store is None:
            self._store = await self._db_call(Store.open, self.options.database_url)
        self.options.videos_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.video_secret = await self.db(self.store.secret, "video_secret")
        self.webhook_secret = await self.db(self.store.secret, "webhook_secret")
        if self._upstream is None:
            endpoint = self.options.webhook_endpoint
            self._upstream = Upstream(base_url=self.options.piapi_url,
                                      webhook=(endpoint, self.webhook_secret) if endpoint else None)
        poll = None
        if self.options.webhook_endpoint:  # webhooks tell of changes: polling is the slow fallback
            from ..client import AdaptivePoll

            poll = AdaptivePoll(blind_interval=15.0, max_delay=30.0)
        self.followers = Followers(self._upstream, self._record, self.options.videos_dir, on_video=self._on_video,
                                   poll=poll)
        for row in await self.db(self.store.interrupted):
            logger.warning("create %s of %s was being forwarded when the service stopped: its outcome is unknown "
                           "(kept, shown to the teacher, not resent)", row.id, row.owner)
        for row in await self.db(partial(self.store.tasks, states=("active",), limit=100_000)):
            if row.task_id:
                self.followers.follow(row.task_id)
        for row in await self.db(partial(self.store.tasks, states=("completed",), limit=100_000)):
            if row.task_id and not row.video and not row.error and row.data:
                self.followers.fetch(Task.from_data(row.data))
        return self

    async def stop(self) -> None:
        if self.followers is not None:
            await self.followers.close()
        if self._upstream is not None:
            await self._upstream.close()
        if self._store is not None:
            await self.db(self._store.close)
        self._pool.shutdown(wait=True)

    @property
    def store(self) -> Store:
        assert self._store is not None, "start() the service first"
        return self._store

    @property
    def upstream(self) -> Upstream:
        assert self._upstream is not None, "start() the service first"
        return self._upstream

    async def db(self, call: Callable[..., T], *args: Any) -> T:
        """A store call, in the service's thread pool (the event loop never waits on the disk)."""
        return await self._db_call(call, *args)

    async def _db_call(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(call, *args))

    # ------------------------------------------------------------------ create

    async def create(self, who: Identity, body: bytes, key: str | None, base: str) -> Reply:
        try:
            request_input = _checked_input(body)
        except InvalidInputError as exc:
            return error(400, f"{exc} Nothing was sent and nothing was charged.")
        if key is not None and (not key.strip() or len(key) > MAX_KEY_CHARS):
            return error(400, f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters (a run id). Nothing was sent.")
        sha = hashlib.sha256(json.dumps(request_input, sort_keys=True).encode()).hexdigest()
        price = price_micros(request_input["duration"])
        found = await self.db(partial(
            self.store.reserve, owner=who.name, idempotency_key=key, request_sha=sha, price_micros=price,
            duration=int(request_input["duration"]), prompt=str(request_input["prompt"]),
            negative_prompt=str(request_input.get("negative_prompt") or ""),
            default_budget_micros=self.options.budget_micros, max_running=self.options.max_running))
        if found.kind == "existing":
            assert found.row is not None
            if found.row.request_sha != sha:
                return error(422, "This Idempotency-Key was already used for a different request: use a new key "
                                  "for a new task. Nothing was sent.")
            return await self._replayed(found.row, base)
        if found.kind == "paused":
            return error(423, "The class is paused by the teacher: no new tasks for now. Nothing was sent and "
                              "nothing was charged; try again when the teacher resumes the class.",
                         {"paused": True})
        if found.kind == "over_budget":
            return error(402, f"Over your class budget: ${dollars(found.left_micros):.2f} left of "
                              f"${dollars(found.budget_micros):.2f}, and this task costs ${dollars(price):.2f}. "
                              "Ask your teacher for more budget (or pick a shorter duration). Nothing was sent and "
                              "nothing was charged.",
                         {"left_usd": dollars(found.left_micros), "asked_usd": dollars(price),
                          "budget_usd": dollars(found.budget_micros)})
        if found.kind == "busy":
            wait = 5
            return error(429, f"You already have {found.running} tasks running (the class allows "
                              f"{self.options.max_running} at once): wait for one to finish, then try again. "
                              "Nothing was sent and nothing was charged.",
                         {"running": found.running, "max_running": self.options.max_running,
                          "retry_after": wait}, {"Retry-After": str(wait)})
        assert found.row is not None
        return await self._forward(found.row, request_input, base)

    async def _forward(self, row: TaskRow, request_input: dict[str, Any], base: str) -> Reply:
        done = self._inflight[row.id] = asyncio.Event()
        try:
            try:
                task = await self.upstream.create(request_input)
            except SubmissionUnknownError as exc:
                row = await self.db(self.store.unknown, row.id, str(exc))
                logger.warning("create %s of %s: outcome unknown (%s)", row.id, row.owner, exc)
            except APIStatusError as exc:
                row = await self.db(self.store.refused, row.id, _refusal(exc))
            except APIConnectionError as exc:
                row = await self.db(self.store.refused, row.id, {"status": 503, "retry_after": 30, "message": (
                    f"The class service cannot reach PiAPI right now ({type(exc).__name__}). No task was created "
                    "and nothing was charged; try again in a minute.")})
            except Exception as exc:  # noqa: BLE001 - anything else: it may have gone out, so it is not resent
                row = await self.db(self.store.unknown, row.id, f"{type(exc).__name__}: {exc}")
                logger.exception("create %s of %s: outcome unknown", row.id, row.owner)
            else:
                row = await self.db(self.store.created, row.id, task.task_id, task.status.value, dict(task.raw))
                assert self.followers is not None
                self.followers.follow(task.task_id, task)
                self.changes.bump(task.task_id)
        finally:
            done.set()
            self._inflight.pop(row.id, None)
        return self._outcome(row, base)

    async def _replayed(self, row: TaskRow, base: str) -> Reply:
        """The first create's outcome for a repeated key, once it has one."""
        deadline = time.monotonic() + IDEMPOTENT_WAIT_SECONDS
        while row.state == "submitting":
            event = self._inflight.get(row.id)
            left = deadline - time.monotonic()
            if left <= 0:
                return error(409, "A create with this Idempotency-Key is still being forwarded: send it again "
                                  "in a moment with the same key (it will not make a second task).",
                             None, {"Retry-After": "2"})
            if event is not None:  # forwarded by this process: wake with it
                try:
                    await asyncio.wait_for(event.wait(), left)
                except asyncio.TimeoutError:
                    pass
            else:  # another process forwards it (several services over one PostgreSQL)
                await asyncio.sleep(min(0.2, left))
            fresh = await self.db(self.store.row, row.id)
            if fresh is None:
                break
            row = fresh
        reply = self._outcome(row, base)
        reply.headers[REPLAYED_HEADER] = "true"
        return reply

    def _outcome(self, row: TaskRow, base: str) -> Reply:
        if row.state == "refused":
            answer = row.answer or {}
            status = int(answer.get("status") or 400)
            headers = {"Retry-After": str(answer["retry_after"])} if answer.get("retry_after") else {}
            return error(status, str(answer.get("message") or "PiAPI refused the task."), None, headers)
        if row.state == "unknown" and not row.task_id:
            return error(502, "PiAPI may or may not have created this task (the connection to it broke after the "
                              "request went out). It was not sent again and its price stays reserved until your "
                              "teacher checks it: do not resend it.",
                         {"outcome": "unknown"}, {SUBMISSION_HEADER: "unknown"})
        return envelope(self.task_view(row, base))

    def task_view(self, row: TaskRow, base: str) -> dict[str, Any]:
        return task_data(row, base=base, video_secret=self.video_secret)

    # ------------------------------------------------------------------ a task's life

    async def _record(self, task: Task, final: str | None, note: str | None) -> bool:
        if final == "lost":
            row = await self.db(self.store.task, task.task_id)
            if row is not None and row.state == "active":
                await self.db(self.store.lost, task.task_id, note or "lost")
            self.changes.bump(task.task_id)
            return True
        before = self.changes.version(task.task_id)
        await self.db(self.store.observed, task.task_id, task.status.value, dict(task.raw), final, note)
        self.changes.bump(task.task_id)
        return self.changes.version(task.task_id) != before

    async def _on_video(self, task_id: str, name: str | None, problem: str | None) -> None:
        await self.db(self.store.set_video, task_id, name, problem)
        self.changes.bump(task_id)

    async def visible_task(self, who: Identity, task_id: str) -> TaskRow | None:
        """The task when `who` may see it (its owner, or a teacher); None otherwise, as for no task."""
        row = await self.db(self.store.task, task_id)
        if row is None or (row.owner != who.name and not await who.is_teacher()):
            return None
        return row

    async def get(self, who: Identity, task_id: str, base: str, wait: float) -> Reply:
        row = await self.visible_task(who, task_id)
        if row is None:
            return _not_found(task_id)
        if wait > 0 and row.state in ("submitting", "active"):
            since = self.changes.version(task_id)
            if await self.changes.wait(task_id, since, wait):
                row = await self.db(self.store.task, task_id) or row
        return envelope(self.task_view(row, base))

    async def cancel(self, who: Identity, task_id: str, base: str) -> Reply:
        row = await self.visible_task(who, task_id)
        if row is None:
            return _not_found(task_id)
        if row.state != "active":
            return error(400, f"Task {task_id} is {row.status or row.state}: only a task that has not finished can "
                              "be cancelled.")
        try:
            await self.upstream.cancel(task_id)
        except APIStatusError as exc:
            return error(exc.status_code if 400 <= exc.status_code < 600 else 502, str(exc))
        except APIError as exc:
            return error(502, f"PiAPI did not answer the cancel ({type(exc).__name__}); the task may still run. "
                              "Try again in a moment.")
        assert self.followers is not None
        self.followers.wake(task_id)
        since = self.changes.version(task_id)
        await self.changes.wait(task_id, since, 5.0)  # PiAPI's answer to the look it triggered
        row = await self.db(self.store.task, task_id) or row
        return envelope(self.task_view(row, base))

    async def share(self, who: Identity, task_id: str, shared: bool, base: str) -> Reply:
        row = await self.visible_task(who, task_id)
        if row is None or row.owner != who.name:
            return _not_found(task_id)
        row = await self.db(self.store.set_shared, task_id, shared) or row
        return envelope(self.task_view(row, base))

    async def account(self, who: Identity) -> dict[str, Any]:
        from ._views import account_data

        await self.db(self.store.register, who.name)
        summary = await self.db(self.store.account, who.name, self.options.budget_micros)
        paused = await self.db(self.store.paused)
        return account_data(summary, max_running=self.options.max_running, paused=paused,
                            simulated=self.upstream.is_simulator)

    async def webhook(self, secret: str, body: bytes) -> int:
        """PiAPI's webhook: wakes the task's follower (its own GET is what counts). The HTTP status."""
        import hmac

        if not self.webhook_secret or not hmac.compare_digest(secret.encode(), self.webhook_secret.encode()):
            return 403
        try:
            payload = json.loads(body)
            task_id = str(payload["data"]["task_id"])
        except (ValueError, KeyError, TypeError):
            return 400
        assert self.followers is not None
        self.followers.wake(task_id)
        return 200


def _checked_input(body: bytes) -> dict[str, Any]:
    """The create's `input`, checked as the client checks it; InvalidInputError otherwise."""
    try:
        request = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        raise InvalidInputError("The request body is not JSON: send PiAPI's create body "
                                "({model, task_type, input}).") from None
    if not isinstance(request, dict) or not isinstance(request.get("input"), dict):
        raise InvalidInputError("The request body must be PiAPI's create body, a JSON object with model, task_type "
                                "and an input object.")
    if request.get("model") != MODEL or request.get("task_type") != TASK_TYPE:
        raise InvalidInputError(f"This class service runs {MODEL} {TASK_TYPE} only, not "
                                f"{request.get('model')!r} {request.get('task_type')!r}.")
    checked = check_request_input(request["input"])
    checked.setdefault("duration", MIN_DURATION)  # priced and sent as one figure
    return checked


def _refusal(exc: APIStatusError) -> dict[str, Any]:
    """PiAPI's refusal as the student is told it: their own mistakes as PiAPI worded them; the
    class account's problems (no credit, a refused key) as something to tell the teacher."""
    status, message = exc.status_code, str(exc)
    if status == 402:
        status, message = 503, ("The class's PiAPI account is out of credit: tell your teacher. No task was created "
                                "and nothing was charged.")
    elif status in (401, 403):
        status, message = 503, ("PiAPI refused the class service's key: tell your teacher. No task was created and "
                                "nothing was charged.")
    answer: dict[str, Any] = {"status": status, "message": message}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        answer["retry_after"] = max(1, round(float(retry_after)))
    elif status == 503:
        answer["retry_after"] = 60
    return answer


def _not_found(task_id: str) -> Reply:
    return error(404, "Record Not Found")
