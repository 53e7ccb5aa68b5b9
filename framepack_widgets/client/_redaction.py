"""Text without secrets: the API key, a URL's `user:password@` and query string, image data.

Whatever a person may see or keep (an error message, a log line, a trace written for a bug
report, a run's error in the store) goes through here. The key is replaced wherever it
occurs; URLs found anywhere in a text lose their userinfo (a proxy's password) and, where
kept for others to read (traces, logs), their query string (a signed link's signature);
`data:` URIs are replaced by their length. The key itself is held in a `Secret`, which
never shows it (no repr, no pickle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import FramepackError

__all__ = [
    "MIN_SECRET_CHARS",
    "NotPicklableError",
    "Secret",
    "display_url",
    "redact",
    "redact_bytes",
    "redact_value",
    "scrub_text",
    "short_url",
]

#: Shorter "keys" (the one-letter keys of tests) are not searched for: replacing every "k"
#: would garble each answer, and no real key is that short.
MIN_SECRET_CHARS = 6

#: A URL anywhere in a text: a scheme, "://", then anything up to white space or a quote.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s\"'<>`]+")
#: A data: URI anywhere in a text (a media type, then its data up to white space or a quote).
_DATA_URI = re.compile(r"\bdata:[A-Za-z]+/[A-Za-z0-9.+-]+(?:;[^,\s\"'<>]*)?,[^\s\"'<>`]*")
#: `//user:password@` when a URL cannot be parsed: dropped all the same.
_USERINFO = re.compile(r"(//)[^/@\s]*@")
_TRAILING = ".,;:!?)]}"


class NotPicklableError(FramepackError, TypeError):
    """A client (its key) cannot be pickled: that would write the key somewhere (a `TypeError` too)."""


class Secret:
    """Holds the API key so that no repr, log line or traceback-with-locals shows it."""

    __slots__ = ("_value", "__weakref__")

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling a client must not write the key somewhere
        raise NotPicklableError(
            "A client cannot be pickled: that would write its API key somewhere. Make a new client where it is needed.")


def _secret_value(secret: "str | Secret | None") -> str | None:
    return secret if isinstance(secret, str) or secret is None else secret.get()


def redact(text: str, *secrets: "str | Secret | None") -> str:
    """Replace every occurrence of each secret (and its URL-quoted form) with `***`, and drop
    the `user:password@` of every URL in `text`."""
    for secret in secrets:
        value = _secret_value(secret)
        if value and len(value) >= MIN_SECRET_CHARS:
            text = text.replace(value, "***")
            quoted = quote(value, safe="")
            if quoted != value:
                text = text.replace(quoted, "***")
    if "@" in text:
        text = _URL.sub(lambda found: _clean_url(found.group(0), keep_query=True), text)
    return text


def redact_value(value: Any, secret: "Secret | None") -> Any:
    """A JSON body with the key replaced wherever it occurs (a copy only when it does)."""
    if secret is None or len(secret.get()) < MIN_SECRET_CHARS:
        return value
    try:
        if secret.get() not in json.dumps(value, default=str, ensure_ascii=False):
            return value
    except (TypeError, ValueError):
        return value
    except RecursionError:  # nested beyond reason: nothing of it is kept, so nothing leaks
        return None
    try:
        return _scrubbed(value, secret)
    except RecursionError:
        return None


def _scrubbed(value: Any, secret: "Secret") -> Any:
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {redact(str(k), secret) if isinstance(k, str) else k: _scrubbed(v, secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, secret) for v in value]
    return value


def redact_bytes(data: bytes, secret: "Secret | None") -> bytes:
    """Raw bytes (a response body kept on an error) with the key replaced."""
    if secret is None or len(secret.get()) < MIN_SECRET_CHARS:
        return data
    for form in {secret.get(), quote(secret.get(), safe="")}:
        data = data.replace(form.encode(), b"***")
    return data


def _clean_url(url: str, *, keep_query: bool) -> str:
    """`url` without `user:password@` (and without its query and fragment unless `keep_query`);
    punctuation that ends a sentence stays where it was."""
    core = url.rstrip(_TRAILING)
    tail = url[len(core):]
    try:
        parts = urlsplit(core)
    except ValueError:
        parts = None
    if parts is None or not parts.netloc:
        cleaned = _USERINFO.sub(r"\1", core)
        return (cleaned if keep_query else cleaned.split("#", 1)[0].split("?", 1)[0]) + tail
    netloc = parts.netloc.rpartition("@")[2]
    cleaned = f"{parts.scheme}://{netloc}{parts.path}"
    if keep_query:
        cleaned += (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return cleaned + tail


def display_url(url: str) -> str:
    """A URL as every message shows it: scheme, host, port and path; never `user:password@`
    (a proxy's credentials), never a query string (a signed link's signature)."""
    return _clean_url(str(url).strip(), keep_query=False).rstrip("/") if url else url


def short_url(url: str) -> str:
    """A URL for a message: without its query string (signed tokens) nor `user:password@`."""
    return _clean_url(str(url), keep_query=False)


def scrub_text(text: str) -> str:
    """`text` for a trace or a log: every URL in it without `user:password@` and query string,
    every data: URI replaced by its length."""
    if "data:" in text:
        text = _DATA_URI.sub(lambda found: f"<data URI removed: {len(found.group(0))} characters>", text)
    if "://" in text:
        text = _URL.sub(lambda found: _clean_url(found.group(0), keep_query=False), text)
    return text
