"""The service's root: the teacher's page for a browser, what the service is for a program.

A browser (it asks for text/html) gets the teacher's page behind the hub's login: HubOAuth
sends someone not logged in to the hub and back; a logged-in student is told the page is
the teachers'; a teacher gets a small HTML shell that loads the page's script and styles
(`static/teacher.js`, `static/teacher.css`, bundled by js/build.mjs from js/src/teacher.js)
from this service. The script draws everything from the teacher JSON API (`_teacher`), with
the xsrf token the shell carries (HubOAuth checks it on every cookie-authenticated request
a script makes). A program (any other Accept) gets what the service is, as JSON.
"""

from __future__ import annotations

import html
import json
from typing import Any

from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from .._assets import BUILD_HINT, STATIC, frontend_file
from ._handlers import ServiceHandler
from ._views import envelope

__all__ = ["page_handlers"]

#: The built files the page loads from this service, and nothing else.
PAGE_FILES = ("teacher.js", "teacher.css")
#: The page's own rules: its script and styles from here, videos from here, nothing from elsewhere.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def _shell(*, xsrf: str, user: str) -> str:
    """The page before its script runs: the root it draws into, the token and who is looking."""
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>FramePack class</title>\n"
        "<link rel=\"stylesheet\" href=\"static/teacher.css\">\n</head>\n<body>\n"
        f"<main id=\"fpw-teacher\" class=\"fpw-root fpw-gallery fpw-teacher\" data-xsrf=\"{html.escape(xsrf)}\" "
        f"data-user=\"{html.escape(user)}\"><p>Loading the class\u2026</p></main>\n"
        "<script src=\"static/teacher.js\" defer></script>\n</body>\n</html>\n"
    )


def _message_page(title: str, text: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<main>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(text)}</p>\n</main>\n</body>\n</html>\n"
    )


class PageHandler(ServiceHandler):
    """`GET <prefix>`: the teacher's page (a browser), or what this service is (a program)."""

    def _wants_page(self) -> bool:
        return "text/html" in self.request.headers.get("Accept", "")

    async def get(self) -> None:
        if not self._wants_page():
            who = await self.identify(required=False)
            self.send(envelope({"service": "framepack class service", "user": who.name if who else None,
                                "teacher": bool(who and await who.is_teacher()),
                                "api": f"{self.base}api/v1/task", "simulated": self.service.upstream.is_simulator}))
            return
        try:
            who = await self.identify(required=False)
        except HTTPError as refused:  # a hub user without the scope
            self._page(403, _message_page("Not for this account", refused.log_message or "Forbidden"))
            return
        if who is None:
            self.redirect(self.get_login_url())  # the hub's login, then back here
            return
        if not await who.is_teacher():
            self._page(403, _message_page(
                "This page is for teachers",
                f"You are logged in as {who.name}. The class page is for the class's teachers (the hub's admins "
                "and the members of the teachers' group). Students generate and share their runs from the "
                "FramePack widget in their notebooks."))
            return
        self.set_header("Content-Security-Policy", _CSP)
        self._page(200, _shell(xsrf=self.xsrf_token.decode("ascii"), user=who.name))

    def _page(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(text)


class PageFileHandler(StaticFileHandler):
    """The page's built script and styles (`static/`), and only those."""

    def initialize(self, service: Any, secrets: tuple[bytes, ...]) -> None:  # type: ignore[override]
        super().initialize(path=str(STATIC))

    async def get(self, path: str, include_body: bool = True) -> None:  # type: ignore[override]
        if path not in PAGE_FILES:
            raise HTTPError(404)
        if frontend_file(path) is None:
            self.set_status(404)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"code": 404, "message": f"The teacher's page was not built: {BUILD_HINT}."}))
            return
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")


def page_handlers(prefix: str) -> list[tuple[str, type[RequestHandler]]]:
    """The root and its files; the root's route goes last (it is the most general)."""
    return [
        (prefix + r"static/(?P<path>[\w.-]+)", PageFileHandler),
        (prefix + r"?", PageHandler),
    ]
