"""Who is asking: the student's JupyterHub token, checked with `jupyterhub.services.auth`.

PiAPI's clients send their credential in `x-api-key`; JupyterHub's in `Authorization: token
…` (or, for a browser on the teacher's page, the OAuth cookie). `ServiceAuth` is JupyterHub's
own `HubOAuth` taught to read `x-api-key` too, so every PiAPI client works with the hub token
in place of the key. The hub answers who owns a token and with which scopes; its answers are
cached (`cache_max_age`), so a student polling costs the hub one request a minute, not one
a poll. A token must carry `access:services!service=<this service>`.

Teachers are the hub's admins and the members of one hub group (`--teachers`). The hub says
so when the service asks about the user with its own token (the service's role needs
`read:users:name` and `read:users:groups`); those answers are cached a minute too.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any, Protocol

import httpx
from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join
from tornado.web import HTTPError, RequestHandler

from ._classroom import Identity

__all__ = ["HubIdentify", "Identify", "ServiceAuth"]

logger = logging.getLogger("framepack_widgets.service")

#: Seconds the hub's answers about tokens and teachers are kept.
CACHE_SECONDS = 60


class Identify(Protocol):
    """Who a request comes from: an Identity, or None when it carries no usable credential.
    Raises HTTPError(403) for a credential that is valid but not allowed here."""

    async def __call__(self, handler: RequestHandler) -> Identity | None: ...


class ServiceAuth(HubOAuth):
    """JupyterHub's HubOAuth, also reading the token from PiAPI's `x-api-key` header."""

    def get_token(self, handler: RequestHandler, in_cookie: bool = True) -> str | None:
        key = handler.request.headers.get("x-api-key", "").strip()
        if key:
            return key
        return super().get_token(handler, in_cookie=in_cookie)


class HubIdentify:
    """The hub's word on a request: its token (or OAuth cookie), the scope, and teacher status."""

    def __init__(self, auth: ServiceAuth, teacher_group: str | None) -> None:
        self.auth = auth
        self.teacher_group = teacher_group
        self._teachers: dict[str, tuple[float, bool]] = {}
        self._http = httpx.AsyncClient(timeout=10.0)

    async def __call__(self, handler: RequestHandler) -> Identity | None:
        model = await self.auth.get_user(handler, sync=False)
        if not model:
            return None
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            raise HTTPError(403, f"this hub token does not allow the class service: it needs the scope "
                                 f"{' or '.join(sorted(self.auth.access_scopes))}")
        if model.get("kind", "user") != "user":
            raise HTTPError(403, "only hub users (students and teachers) use the class service")
        name = str(model["name"])
        known = bool(model.get("admin")) or bool(self.teacher_group and self.teacher_group in (model.get("groups") or ()))
        return Identity(name, teacher=known, check=partial(self._is_teacher, name, model))

    async def _is_teacher(self, name: str, model: dict[str, Any]) -> bool:
        if model.get("admin") or (self.teacher_group and self.teacher_group in (model.get("groups") or ())):
            return True
        cached = self._teachers.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        answer = False
        try:
            reply = await self._http.get(url_path_join(self.auth.api_url, "users", name),
                                         headers={"Authorization": f"token {self.auth.api_token}"})
            if reply.status_code == 200:
                user = reply.json()
                answer = bool(user.get("admin")) or bool(
                    self.teacher_group and self.teacher_group in (user.get("groups") or ()))
            elif reply.status_code in (403, 404):
                logger.warning("the hub would not tell whether %s teaches (HTTP %s): give the service's role "
                               "read:users:name and read:users:groups", name, reply.status_code)
        except httpx.HTTPError as exc:
            logger.warning("could not ask the hub whether %s teaches: %s", name, type(exc).__name__)
            return False  # not cached: ask again next time
        self._teachers[name] = (time.monotonic() + CACHE_SECONDS, answer)
        return answer

    async def close(self) -> None:
        await self._http.aclose()
