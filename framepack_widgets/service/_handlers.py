"""PiAPI's routes as the class service answers them, on tornado.

Each handler reads the request, asks `ClassService` and writes its `Reply`; none decides
anything. Every body a student receives passes `ServiceHandler.send`, which also blanks the
class's PiAPI key and the webhook secret should either ever reach it (belt and braces: the
client already removes echoes of the key from PiAPI's answers). Errors are PiAPI's envelope
too, never a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from ..errors import InvalidInputError
from ._classroom import ClassService, Identity
from ._views import Reply, error, video_signature

__all__ = ["ServiceHandler", "handlers"]

logger = logging.getLogger("framepack_widgets.service")


class ServiceHandler(HubOAuthenticated, RequestHandler):
    """Base of every route: the service, who is asking, and one way to answer."""

    service: ClassService

    def initialize(self, service: ClassService, secrets: tuple[bytes, ...]) -> None:
        self.service = service
        self._secrets = secrets
        self.who: Identity | None = None
        auth = self.settings.get("hub_auth")
        if auth is not None:
            self.hub_auth = auth

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    @property
    def base(self) -> str:
        """The service's address as this request reached it (through the hub's proxy)."""
        return f"{self.request.protocol}://{self.request.host}{self.service.options.prefix}"

    async def identify(self, *, required: bool = True) -> Identity | None:
        who = await self.settings["identify"](self)
        if who is None and required:
            raise HTTPError(401, "no credential: send your JupyterHub token in x-api-key (or Authorization: token …)")
        self.who = who
        return who

    async def teacher(self) -> Identity:
        if self.who is None or not await self.who.is_teacher():
            raise HTTPError(403, "teachers only (the hub's admins and the members of the teachers' group)")
        return self.who

    def scrub(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if secret:
                data = data.replace(secret, b"***")
        return data

    def send(self, reply: Reply) -> None:
        self.set_status(reply.status)
        for name, value in reply.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        body = json.dumps(reply.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.finish(self.scrub(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "the class service failed on this request; the teacher can find it in the service's log"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        body = json.dumps({"code": status_code, "message": message, "data": None}).encode()
        self.finish(self.scrub(body))

    def body_json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "the request body is not JSON") from None
        if not isinstance(value, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        return value


class CreateHandler(ServiceHandler):
    async def post(self) -> None:
        who = await self.identify()
        assert who is not None
        key = self.request.headers.get("Idempotency-Key")
        self.send(await self.service.create(who, self.request.body, key, self.base))


class TaskHandler(ServiceHandler):
    async def get(self, task_id: str) -> None:
        who = await self.identify()
        assert who is not None
        try:
            wait = self.service.options.max_wait(self.get_argument("wait", None))
        except InvalidInputError as exc:
            raise HTTPError(400, str(exc)) from None
        self.send(await self.service.get(who, task_id, self.base, wait))

    async def delete(self, task_id: str) -> None:
        who = await self.identify()
        assert who is not None
        self.send(await self.service.cancel(who, task_id, self.base))


class CancelHandler(ServiceHandler):
    async def post(self, task_id: str) -> None:
        who = await self.identify()
        assert who is not None
        self.send(await self.service.cancel(who, task_id, self.base))


class ShareHandler(ServiceHandler):
    """`{"shared": true}` shows the owner's task (and its video) in the class gallery."""

    async def post(self, task_id: str) -> None:
        who = await self.identify()
        assert who is not None
        shared = self.body_json().get("shared", True)
        if not isinstance(shared, bool):
            raise HTTPError(400, 'send {"shared": true} or {"shared": false}')
        self.send(await self.service.share(who, task_id, shared, self.base))

    put = post


class EventsHandler(ServiceHandler):
    """Server-sent events: the task's envelope now and at every change, until it ends."""

    async def get(self, task_id: str) -> None:
        who = await self.identify()
        assert who is not None
        service = self.service
        row = await service.visible_task(who, task_id)
        if row is None:
            self.send(error(404, "Record Not Found"))
            return
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        try:
            while True:
                since = service.changes.version(task_id)
                row = await service.db(service.store.task, task_id) or row
                data = json.dumps({"code": 200, "message": "success", "data": service.task_view(row, self.base)},
                                  ensure_ascii=False, separators=(",", ":"))
                self.write(self.scrub(f"event: task\ndata: {data}\n\n".encode()))
                await self.flush()
                if row.state not in ("submitting", "active"):
                    break
                while not await service.changes.wait(task_id, since, 15.0):
                    self.write(b": still running\n\n")
                    await self.flush()
        except StreamClosedError:
            return
        self.finish()


class AccountHandler(ServiceHandler):
    async def get(self) -> None:
        who = await self.identify()
        assert who is not None
        from ._views import envelope

        self.send(envelope(await self.service.account(who)))


class UploadHandler(ServiceHandler):
    """PiAPI's upload endpoint is not offered: the client then sends images inline (base64)."""

    async def post(self) -> None:
        await self.identify()
        self.send(error(403, "The class service takes images inline (base64) in the create request, not as "
                             "uploads: nothing was uploaded."))


class VideoHandler(HubOAuthenticated, StaticFileHandler):
    """A task's video: to whoever holds its signed URL (as PiAPI's own URLs work; clients fetch
    videos without credentials), else to its owner, a teacher, or the class once it is shared."""

    def initialize(self, service: ClassService, secrets: tuple[bytes, ...]) -> None:  # type: ignore[override]
        self.service = service
        auth = self.settings.get("hub_auth")
        if auth is not None:
            self.hub_auth = auth
        super().initialize(path=str(service.options.videos_dir))

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "private, max-age=3600")

    async def get(self, task_id: str, include_body: bool = True) -> None:  # type: ignore[override]
        service = self.service
        row = await service.db(service.store.task, task_id)
        allowed = False
        if row is not None:
            import hmac

            signature = self.get_argument("sig", "")
            allowed = bool(signature) and hmac.compare_digest(signature, video_signature(service.video_secret, task_id))
            if not allowed:
                who = await self.settings["identify"](self)
                allowed = who is not None and (who.name == row.owner or row.shared or await who.is_teacher())
        if row is None or not allowed or row.state != "completed":
            raise HTTPError(404)
        name = row.video
        if not name and service.followers is not None:
            name = await service.followers.video(task_id)  # a download under way
        if not name:
            raise HTTPError(404, "the video is not in the class service (yet): try again in a moment")
        await super().get(name, include_body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"code": status_code, "message": "Record Not Found" if status_code == 404 else
                                self._reason, "data": None}))


class WebhookHandler(RequestHandler):
    """PiAPI's webhook: the secret is checked; it only wakes the task's follower."""

    def initialize(self, service: ClassService, secrets: tuple[bytes, ...]) -> None:
        self.service = service

    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        status = await self.service.webhook(self.request.headers.get("x-webhook-secret", ""), self.request.body)
        self.set_status(status)
        self.finish({"code": status, "message": "ok" if status == 200 else "refused"})


def handlers(prefix: str) -> list[tuple[str, type[RequestHandler]]]:
    """PiAPI's routes under the service's prefix (`/services/framepack/`); the root is `_page`'s."""
    task = r"(?P<task_id>[^/]+)"
    return [
        (prefix + r"api/v1/task/?", CreateHandler),
        (prefix + rf"api/v1/task/{task}/cancel/?", CancelHandler),
        (prefix + rf"api/v1/task/{task}/events/?", EventsHandler),
        (prefix + rf"api/v1/task/{task}/share/?", ShareHandler),
        (prefix + rf"api/v1/task/{task}/?", TaskHandler),
        (prefix + r"account/info/?", AccountHandler),
        (prefix + r"api/ephemeral_resource/?", UploadHandler),
        (prefix + rf"videos/{task}\.mp4", VideoHandler),
        (prefix + r"webhook/piapi/?", WebhookHandler),
    ]
