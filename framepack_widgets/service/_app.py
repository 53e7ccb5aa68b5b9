"""The service as a running server: tornado's Application under the hub's prefix, and its lifecycle.

`serve(options)` is what `framepack service` runs: it opens the store, starts following the
class's unfinished tasks, listens where the hub expects the service (JUPYTERHUB_SERVICE_URL)
and stops cleanly on SIGTERM (the hub stops its managed services that way). `start_app`
returns the running pieces for tests and benchmarks, with `identify` replaceable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from ._auth import HubIdentify, Identify, ServiceAuth
from ._classroom import ClassService
from ._handlers import handlers
from ._options import ServiceOptions
from ._page import page_handlers
from ._teacher import teacher_handlers
from ._upstream import Upstream

__all__ = ["RunningService", "serve", "start_app"]

logger = logging.getLogger("framepack_widgets.service")

#: The largest request body (a create with two base64 images inline).
MAX_BODY_BYTES = 48 * 1024 * 1024


@dataclass
class RunningService:
    service: ClassService
    server: HTTPServer
    port: int
    identify: Identify

    @property
    def url(self) -> str:
        """The service's own address (not through the hub's proxy), prefix included."""
        return f"http://{self.service.options.host}:{self.port}{self.service.options.prefix}"

    async def stop(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()
        closer = getattr(self.identify, "close", None)
        if closer is not None:
            await closer()
        await self.service.stop()


def make_app(service: ClassService, identify: Identify, auth: ServiceAuth | None) -> Application:
    from jupyterhub.services.auth import HubOAuthCallbackHandler

    prefix = service.options.prefix
    protected = tuple(s.encode() for s in (os.environ.get("PIAPI_API_KEY") or "", service.webhook_secret) if s)
    kwargs: dict[str, Any] = {"service": service, "secrets": protected}
    routes: list[Any] = [(path, handler, kwargs)
                         for path, handler in handlers(prefix) + teacher_handlers(prefix) + page_handlers(prefix)]
    if auth is not None:
        routes.insert(0, (prefix + "oauth_callback", HubOAuthCallbackHandler))
    return Application(
        routes,
        identify=identify,
        hub_auth=auth,
        cookie_secret=secrets.token_bytes(32),
        login_url=auth.login_url if auth is not None else None,
        xsrf_cookies=False,  # cookie-authenticated writes are checked by HubOAuth itself
    )


async def start_app(options: ServiceOptions, *, identify: Identify | None = None, upstream: Upstream | None = None,
                    ) -> RunningService:
    """Open the store, follow unfinished tasks and listen; `identify` defaults to the hub's."""
    service = await ClassService(options, upstream=upstream).start()
    auth = None
    try:
        if identify is None:
            auth = ServiceAuth.instance(base_url=options.prefix, cache_max_age=60)
            identify = HubIdentify(auth, options.teacher_group)
        server = HTTPServer(make_app(service, identify, auth), xheaders=True, max_body_size=MAX_BODY_BYTES)
        sockets = bind_sockets(options.port, options.host)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
    except BaseException:
        await service.stop()
        raise
    return RunningService(service, server, port, identify)


async def serve(options: ServiceOptions, *, ready: "asyncio.Event | None" = None) -> None:
    """Run until SIGTERM or SIGINT."""
    running = await start_app(options)
    logger.info("framepack class service at %s (PiAPI: %s, database: %s)", running.url,
                running.service.upstream.base_url, running.service.store.kind)
    print(f"framepack class service listening on {running.url} "
          f"({'simulator' if running.service.upstream.is_simulator else 'PiAPI'} at "
          f"{running.service.upstream.base_url}, {running.service.store.kind} store)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await running.stop()
