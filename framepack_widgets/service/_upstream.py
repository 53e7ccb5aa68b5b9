"""The service's side toward PiAPI: the package's own `AsyncClient`, with the key it alone holds.

Every rule the client keeps holds here unchanged: a create is retried only when it surely
made nothing, and one whose outcome is unknown raises `SubmissionUnknownError` (the service
keeps it and shows it to the teacher; it never resends it). Answers come back with any echo
of the key removed. Videos are downloaded without the key.

When the service has a public address, each create it forwards asks PiAPI for a webhook
(`config.webhook_config` with the service's endpoint and secret). The client builds the
create body itself, so that field is added by the transport under it (`_WebhookConfig`):
the only request it touches is the create, and only to add the service's own webhook.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from ..client import AsyncClient
from ..task import Task

__all__ = ["Upstream"]

#: Connections the service keeps open toward PiAPI (the client queues its calls at its own gate).
_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16)


class _WebhookConfig(httpx.AsyncBaseTransport):
    """Adds `config.webhook_config` to the create requests that pass through it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, endpoint: str, secret: str) -> None:
        self._inner = inner
        self._hook = {"endpoint": endpoint, "secret": secret}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/api/v1/task"):
            body = json.loads(request.content)
            config = body.get("config") if isinstance(body.get("config"), dict) else {}
            body["config"] = {**config, "webhook_config": dict(self._hook)}
            content = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
            request = httpx.Request(request.method, request.url, headers=headers, content=content,
                                    extensions=request.extensions)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Upstream:
    """PiAPI (or the simulator) as the service calls it."""

    def __init__(self, *, base_url: str | None, webhook: tuple[str, str] | None = None,
                 api_key: str | None = None) -> None:
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=_LIMITS)
        if webhook is not None:
            transport = _WebhookConfig(transport, *webhook)
        self._http = httpx.AsyncClient(transport=transport, timeout=30.0)
        self.client = AsyncClient(api_key, base_url=base_url, http_client=self._http)
        if not self.client.has_api_key:
            raise_no_key()

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def is_simulator(self) -> bool:
        return self.client.is_simulator

    async def create(self, input: dict[str, Any]) -> Task:
        return await self.client.create_task(input)

    async def get(self, task_id: str) -> Task:
        return await self.client.get_task(task_id)

    async def cancel(self, task_id: str) -> Task | None:
        return await self.client.cancel(task_id)

    async def download(self, task: Task, path: Path) -> Path:
        return await self.client.download(task, path)

    async def close(self) -> None:
        await self.client.close()
        await self._http.aclose()


def raise_no_key() -> None:
    from ..errors import InvalidInputError

    where = "the service's environment" if os.environ.get("JUPYTERHUB_SERVICE_NAME") else "the environment"
    raise InvalidInputError(
        f"PIAPI_API_KEY is not set in {where}: the class service holds the class's PiAPI key and forwards "
        "students' tasks with it. Set it in the service's environment (c.JupyterHub.services[...]"
        "['environment'] or a secret in Zero to JupyterHub), never in the students'."
    )
