"""What the kernel tells the widget's views besides traits: custom messages and the notice line.

`Outbox` sends custom messages (see `_protocol` for the wire): bytes as chunked buffers,
never in a trait. `Notice` owns the one-line notice at the widget's top (an export saved,
a run being extended, a damaged history moved aside); the widget mirrors it into `_notice`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import traitlets as t

from . import _protocol as proto

__all__ = ["Notice", "Outbox", "Send"]

#: How a custom message leaves the kernel: anywidget's `widget.send(content, buffers)`.
Send = Callable[[dict[str, Any], "list[bytes] | None"], None]


class Outbox:
    """Sends custom messages to every view of one widget."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def post(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self._send(content, buffers or None)

    def send_file(self, kind: str, key: str, data: bytes, mime: str, **extra: Any) -> None:
        """Bytes to the browser in chunks small enough for every frontend (Colab: ~1 MB)."""
        pieces = proto.chunks(data)
        for index, piece in enumerate(pieces):
            self.post(
                {"type": kind, "key": key, "index": index, "count": len(pieces), "size": len(data), "mime": mime,
                 **extra},
                [piece],
            )

    def error(self, message: str, **extra: Any) -> None:
        self.post({"type": "error", "message": message, **extra})


class Notice(t.HasTraits):
    """The notice line: one short text for the person, or empty."""

    text = t.Unicode("")

    def say(self, text: str) -> None:
        self.text = text

    def clear(self) -> None:
        self.text = ""
