"""What the kernel tells the widget's views besides traits: custom messages and the notice line.

`Outbox` sends custom messages (see `_protocol` for the wire): bytes as chunked buffers,
never in a trait. `Notice` owns the one-line notice at the widget's top (a run being
extended, a damaged history moved aside); the widget mirrors it into `_notice`. A notice
never shows a local folder (`without_folders`): it is in the saved notebook and on screen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import traitlets as t

from . import _protocol as proto

__all__ = ["Notice", "Outbox", "Send", "without_folders"]

#: An absolute or home path (POSIX or Windows) with at least one folder: its folders are cut.
_PATH = re.compile(r"(?<![\w.:/\\~])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\'\"]+)*[/\\]([^\s/\\'\"]+)")


def without_folders(text: str, folders: Iterable[str | os.PathLike[str]] = ()) -> str:
    """`text` with each local path cut to its file name ("/home/me/x/runs.sqlite3" -> "runs.sqlite3").
    `folders` (and the home folder) are cut first, whole, so a space in them leaves nothing behind."""
    known = {str(folder).rstrip("/\\") for folder in (*folders, Path.home())}
    for folder in sorted((f for f in known if f and f not in (".", "~")), key=len, reverse=True):
        text = text.replace(folder + os.sep, "").replace(folder, "")
    return _PATH.sub(lambda m: m.group(1), text)

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
    """The notice line: one short text for the person, or empty; never a local folder
    (`folders`, e.g. the run store's, and the home folder are cut out whole)."""

    text = t.Unicode("")

    def __init__(self, folders: Iterable[str | os.PathLike[str]] = ()) -> None:
        super().__init__()
        self._folders = tuple(folders)

    def say(self, text: str) -> None:
        self.text = without_folders(text, self._folders)

    def clear(self) -> None:
        self.text = ""
