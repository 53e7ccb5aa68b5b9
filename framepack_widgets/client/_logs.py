"""The key out of DEBUG logs, the HTTP libraries' included.

httpx and httpcore log at DEBUG what they send and receive. An API that echoes the key (in a
response header, say) would put it in a log that a person may paste into a bug report. A
filter on those loggers replaces the key of every live client before a record is written.
"""

from __future__ import annotations

import logging
import weakref

from ._settings import Secret, redact

__all__ = ["guard_logs"]

#: httpx's logger and httpcore's (one per module), and this package's own.
_LOGGERS = (
    "httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
    "httpcore.socks", "framepack_widgets",
)  # fmt: skip
_secrets: "weakref.WeakSet[Secret]" = weakref.WeakSet()


class _RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        secrets = list(_secrets)
        if secrets:
            message = record.getMessage()
            clean = redact(message, *secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_FILTER = _RedactKeys()


def guard_logs(secret: Secret | None) -> None:
    """Keep `secret` out of every record those loggers write, while it is alive."""
    if secret is None:
        return
    _secrets.add(secret)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
