"""Browser -> kernel image uploads, which arrive cut into chunks.

Why chunks: some front-ends drop a widget message over about 1 MB (Colab), so the browser
sends an image in pieces of at most `MESSAGE_CHUNK_BYTES` and the kernel joins them here.
An upload bigger than `MAX_UPLOAD_BYTES` is refused before it is joined: the person is told
to set the image from Python, where no message limit applies.
"""

from __future__ import annotations

import math
from typing import Any

from ..constants import MAX_UPLOAD_BYTES, MESSAGE_CHUNK_BYTES
from ..errors import InvalidInputError

__all__ = ["UploadRefused", "Uploads", "too_big_message"]


class UploadRefused(InvalidInputError):
    """The upload cannot be taken (nothing was sent anywhere); the message says what to do instead."""


def too_big_message(size: int | None, slot: str, limit: int = MAX_UPLOAD_BYTES) -> str:
    what = f" ({size / 2**20:.1f} MB)" if size else ""
    return (
        f"The image is too large to send from the browser{what}: at most {limit / 2**20:g} MB can be "
        f"sent, so set widget.{slot}_image from Python instead (a path, bytes or a PIL image)."
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Pending:
    __slots__ = ("upload_id", "parts", "got", "count", "total")

    def __init__(self, upload_id: str, count: int, total: int | None) -> None:
        self.upload_id = upload_id
        self.parts: list[bytes | None] = [None] * count
        self.got = 0
        self.count = count
        self.total = total


class Uploads:
    """Joins the chunks of each slot's upload; a new upload to a slot drops its unfinished one."""

    def __init__(self, *, limit: int = MAX_UPLOAD_BYTES, chunk: int = MESSAGE_CHUNK_BYTES) -> None:
        self.limit = limit
        self.chunk = chunk
        self._pending: dict[str, _Pending] = {}

    def add(self, slot: str, content: dict, piece: bytes) -> bytes | None:
        """Take one chunk; the whole image once its last chunk is in, else None.
        Raises UploadRefused for an upload too large or malformed (its chunks are dropped)."""
        count = _int(content.get("count")) or 1
        index = _int(content.get("index")) or 0
        total = _int(content.get("total"))
        upload_id = str(content.get("upload_id") or "")[:80]
        if (total is not None and total > self.limit) or count > math.ceil(self.limit / self.chunk):
            self._pending.pop(slot, None)
            raise UploadRefused(too_big_message(total, slot, self.limit))
        if not 0 <= index < count or len(piece) > self.chunk:
            self._pending.pop(slot, None)
            raise UploadRefused("The image arrived garbled (a piece out of place); try again.")
        if count == 1:
            self._pending.pop(slot, None)
            return self._checked(bytes(piece), total)
        pending = self._pending.get(slot)
        if pending is None or pending.upload_id != upload_id or pending.count != count:
            pending = self._pending[slot] = _Pending(upload_id, count, total)
        if pending.parts[index] is None:
            pending.parts[index] = bytes(piece)
            pending.got += 1
        if pending.got < pending.count:
            return None
        del self._pending[slot]
        return self._checked(b"".join(p for p in pending.parts if p is not None), pending.total)

    def _checked(self, data: bytes, total: int | None) -> bytes:
        if total is not None and len(data) != total:
            raise UploadRefused("The image arrived incomplete; try again.")
        return data

    def pending(self) -> dict[str, tuple[int, int]]:
        """Unfinished uploads: slot -> (chunks in, chunks expected). For tests and debugging."""
        return {slot: (p.got, p.count) for slot, p in self._pending.items()}
