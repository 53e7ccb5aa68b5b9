"""The key and URL secrets out of logs, the HTTP libraries' included.

httpx and httpcore log what they send and receive (httpx every request's URL at INFO). An
API that echoes the key (in a response header, say) would put it in a log that a person may
paste into a bug report, and so would a signed video URL's query or a proxy's
`user:password@`. A filter on those loggers replaces the key of every live client, and
scrubs every URL and data: URI in the line, before a record is written.
"""

from __future__ import annotations

import logging
import weakref

from ._redaction import redact, scrub_text
from ._settings import Secret

__all__ = ["guard_logs"]

#: httpx's logger and httpcore's (one per module), and this package's own.
_LOGGERS = (
    "httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
    "httpcore.socks", "framepack_widgets",
)  # fmt: skip
_secrets: "weakref.WeakSet[Secret]" = weakref.WeakSet()


class _RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(redact(message, *list(_secrets)))
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactKeys()


def guard_logs(secret: Secret | None) -> None:
    """Keep `secret` (while it is alive) and URL secrets out of every record those loggers write."""
    if secret is not None:
        _secrets.add(secret)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
