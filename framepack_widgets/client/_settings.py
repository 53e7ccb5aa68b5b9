"""What a client is configured with, and keeping its API key out of sight.

Settings come from arguments first, then `PIAPI_API_KEY` / `PIAPI_BASE_URL`, then, in a
student's server on a JupyterHub with no key of its own, the classroom service
(`FRAMEPACK_SERVICE_URL`, with the server's `JUPYTERHUB_API_TOKEN` as the credential), then
PiAPI's public defaults. The key lives in a `Secret` (no repr, no pickle), which `_redaction`
defines beside the code that takes it, and a base URL's `user:password@`, out of any text a
person might see.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from .._environment import class_service, is_hub_address
from ..constants import DEFAULT_BASE_URL, DEFAULT_UPLOAD_URL, SIMULATOR_KEY_PREFIX
from ..errors import InvalidInputError
from ._redaction import (
    MIN_SECRET_CHARS,
    NotPicklableError,
    Secret,
    display_url,
    redact,
    redact_bytes,
    redact_value,
    short_url,
)
from ._words import Words, words_for

__all__ = [
    "API_KEY_HEADER",
    "ClientArgumentError",
    "NotPicklableError",
    "CONNECT_TIMEOUT",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_UPLOAD_URL",
    "POOL_LIMITS",
    "POOL_SIZE",
    "POOL_TIMEOUT",
    "MIN_SECRET_CHARS",
    "Secret",
    "Settings",
    "display_url",
    "is_loopback_url",
    "made_for_the_simulator",
    "redact",
    "redact_bytes",
    "redact_value",
    "resolve_settings",
    "short_url",
    "USER_AGENT",
]

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
#: The header that carries the key: only on requests to the API and its upload host.
API_KEY_HEADER = "x-api-key"
USER_AGENT = "framepack-widgets"

#: The pool of a client that opens its own `httpx` client: a handful of kept-alive
#: connections, like a browser's per host. A hundred concurrent waits queue for them.
POOL_SIZE = 6
POOL_LIMITS = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
#: How long a request may queue for one of those connections: without limit. The queue
#: moves as requests finish (API calls are bounded by their own timeouts, downloads by
#: their size); a finite figure would only turn a busy pool (six long downloads, a
#: hundred waits on a slow API) into spurious `PoolTimeout`s. A wait's deadline still
#: bounds each of its polls, queueing included (`Waiter.request_timeout`).
POOL_TIMEOUT: float | None = None

_PIAPI_HOST_SUFFIXES = ("piapi.ai", "theapi.app")


class ClientArgumentError(InvalidInputError, TypeError):
    """An argument of the wrong kind for this client (also a `TypeError`); nothing was sent."""


@dataclass(frozen=True)
class Settings:
    """What a client was configured with, after the environment was consulted."""

    api_key: Secret | None
    base_url: str  # where requests go, without the user:password@ it was given with (see `base_auth`)
    upload_url: str
    timeout: httpx.Timeout
    max_retries: int
    words: Words  # advice for the audience: Python code or the command line
    #: The `Authorization` header for a base URL given as `http://user:password@proxy` (as httpx
    #: would send it), kept out of every URL, so no request, message or traceback shows it.
    base_auth: Secret | None = None
    #: The base URL is the classroom service (`framepack service` behind JupyterHub): the key is
    #: the student's hub token, creates carry an Idempotency-Key it honours, waits use its long poll.
    class_service: bool = False

    @property
    def display_base_url(self) -> str:
        """The base URL as every message shows it: never `user:password@`, never a query."""
        return display_url(self.base_url)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def is_loopback_url(url: str) -> bool:
    """True when the URL names this machine for certain: a literal loopback address
    (127.0.0.0/8, ::1) or `localhost` itself. A `*.localhost` name is not: it may be
    resolved through DNS, to another machine."""
    try:
        host = httpx.URL(url).host
    except Exception:
        return False
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def made_for_the_simulator(settings: Settings) -> bool:
    """Whether a client looks made for the offline simulator before it has heard from it:
    this machine, and the simulator's own kind of key (or none). A loopback proxy to PiAPI
    with a real key is not the simulator; the simulator's answers say so for certain. The
    classroom service is never the simulator, wherever it runs."""
    if settings.class_service or not is_loopback_url(settings.base_url):
        return False
    return settings.api_key is None or settings.api_key.get().startswith(SIMULATOR_KEY_PREFIX)


def _is_piapi(url: str) -> bool:
    host = (httpx.URL(url).host or "").lower()
    return any(host == s or host.endswith("." + s) for s in _PIAPI_HOST_SUFFIXES)


def _make_timeout(timeout: "float | httpx.Timeout | None") -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT, pool=POOL_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    return httpx.Timeout(float(timeout), connect=CONNECT_TIMEOUT, pool=POOL_TIMEOUT)


def _check_url(url: str, what: str) -> str:
    url = str(url).strip()
    shown = display_url(url)  # never a password in a message
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInputError(f"{what} must start with http:// or https://, not {shown!r}.")
    try:
        parsed = httpx.URL(url)
    except Exception as exc:
        raise InvalidInputError(f"{what} is not a valid URL ({shown!r}): {redact(str(exc))}") from None
    if not parsed.host:
        raise InvalidInputError(f"{what} ({shown!r}) has no host name; give a full URL, e.g. https://api.piapi.ai.")
    return url.rstrip("/")


def _split_userinfo(url: str) -> tuple[str, Secret | None]:
    """(the URL without `user:password@`, the Basic `Authorization` header it stood for)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    bare = parts._replace(netloc=host).geturl()
    return bare.rstrip("/"), Secret(f"Basic {token}")


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_settings(
    api_key: str | None = None,
    *,
    base_url: str | None = None,
    timeout: "float | httpx.Timeout | None" = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    upload_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    allow_http: bool | None = None,
    audience: str = "python",
) -> Settings:
    """Arguments win; then PIAPI_API_KEY / PIAPI_BASE_URL; then the classroom service; then
    PiAPI's public defaults.

    The classroom service is used when FRAMEPACK_SERVICE_URL and JUPYTERHUB_API_TOKEN are set
    and no key is (neither given nor in PIAPI_API_KEY), or when `base_url` is that service's
    address: the hub token is then the key.

    A key is never sent in clear text to another machine: an http:// address that is not
    this machine's own (the offline simulator) is refused unless `allow_http=True` (or
    PIAPI_ALLOW_HTTP=1) says the person means it. A hub token may go to the hub's own
    internal address over http:// (where the hub already sends it: `is_hub_address`).
    """
    words = words_for(audience)
    environ = os.environ if environ is None else environ
    key = api_key if api_key is not None else _env(environ, "PIAPI_API_KEY")
    if key is not None and not isinstance(key, str):
        raise InvalidInputError("api_key must be a string.")
    key = key.strip() if key else None
    in_class, where = False, "base_url"
    service_env = _env(environ, "FRAMEPACK_SERVICE_URL")
    if service_env and base_url:
        in_class = _same_url(str(base_url), service_env)
        key = key or (_env(environ, "JUPYTERHUB_API_TOKEN") if in_class else None)
    elif service_env and key is None:
        service = class_service(environ)  # a FRAMEPACK_SERVICE_URL that is no http(s) URL is refused here
        if service is not None:
            base_url, key, in_class, where = service.url, service.token, True, "FRAMEPACK_SERVICE_URL"
    from_env = not base_url and _env(environ, "PIAPI_BASE_URL")
    where = "PIAPI_BASE_URL" if from_env else where
    base = _check_url(base_url or from_env or DEFAULT_BASE_URL, where)
    allowed = _truthy(environ.get("PIAPI_ALLOW_HTTP")) if allow_http is None else allow_http
    if in_class and is_hub_address(base, environ):
        allowed = True  # the hub's own internal address: the hub token travels there already
    if key and base.lower().startswith("http://") and not is_loopback_url(base) and not allowed:
        what, use = ("hub token", "Use https://, or the hub's own internal address") if in_class else (
            "API key", "Use https://")
        raise InvalidInputError(
            f"{where} is {display_url(base)}, a plain http:// address on another machine: your {what} would "
            f"travel unencrypted, readable by anyone on the way. {use}. If you really mean it (a proxy on a "
            f"trusted network), {words.allow_http}. Nothing was sent."
        )
    base, base_auth = _split_userinfo(base)
    if upload_url:
        upload = _check_url(upload_url, "upload_url")
    elif _is_piapi(base):
        upload = DEFAULT_UPLOAD_URL
    else:
        upload = f"{base}/api/ephemeral_resource"
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInputError(f"max_retries must be a whole number >= 0, not {max_retries!r}.")
    return Settings(
        api_key=Secret(key) if key else None,
        base_url=base,
        upload_url=upload,
        timeout=_make_timeout(timeout),
        max_retries=max_retries,
        words=words,
        base_auth=base_auth,
        class_service=in_class,
    )
