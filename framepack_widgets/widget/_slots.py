"""The widget's image slots (start, end) and what is wrong with its inputs.

A slot holds the normalised image (`ImageSource`), the facts the browser shows beside it
(`*_image_info`) and a small JPEG thumbnail, sent as a message buffer (never a trait) when the
image is set and again to each new view. The slots also own the inputs' error line
(`input_error`) and where the start image came from: after Extend it is a run's last frame,
and the next run records that run as its parent.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..errors import InvalidInputError
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput, ImageSource
    from ._outbox import Outbox

__all__ = ["THUMB_SIDE", "ImageSlots", "image_name"]

log = logging.getLogger(__name__)

THUMB_SIDE = 256


def image_name(value: Any) -> str:
    """What to call an image in the slot: its file name, or what kind of value it was."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.startswith("data:"):
            return "data URI"
        return (text.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or text)[:120]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "image bytes"
    kind = type(value)
    if kind.__module__.startswith("PIL."):
        return "PIL image"
    return "numpy array" if kind.__name__ == "ndarray" else kind.__name__


class ImageSlots(t.HasTraits):
    """The start and end image of one widget, their thumbnails, and the inputs' error."""

    start_image_info = t.Dict(allow_none=True, default_value=None)
    end_image_info = t.Dict(allow_none=True, default_value=None)
    input_error = t.Unicode("")

    def __init__(self, outbox: "Outbox") -> None:
        super().__init__()
        self._outbox = outbox
        self._images: dict[str, ImageSource | None] = {slot: None for slot in proto.SLOTS}
        self._thumbs: dict[str, dict[str, Any]] = {}
        self._continues: tuple[str, str] | None = None  # (run id, sha256 of its last frame as set)

    def get(self, slot: str) -> "ImageSource | None":
        return self._images[slot]

    def set(self, slot: str, value: Any, *, name: str | None = None, size: int | None = None,
            continues: str | None = None) -> None:
        """Put an image in a slot (None clears it). Bad input raises InvalidInputError, which
        the error line shows too. `continues`: the run whose last frame this start image is."""
        if value is None:
            self._images[slot] = None
            self._thumbs.pop(slot, None)
            self._info(slot, None)
            self._outbox.post({"type": "image", "slot": slot, "clear": True})
            return
        from ..inputs import normalize_image

        try:
            source = normalize_image(value, what=f"{slot} image")
        except InvalidInputError as exc:
            self.input_error = str(exc)
            raise
        self._images[slot] = source
        if continues is not None:
            self._continues = (continues, source.sha256)
        info: dict[str, Any] = {
            "name": name or image_name(value),
            "width": source.width,
            "height": source.height,
            "size": size or source.original_size or (len(source.data) if source.data else None),
        }
        if source.url:
            info["url"] = source.url
        thumb: dict[str, Any] = {"name": info["name"], "url": source.url}
        if source.data:
            try:
                thumb["data"] = proto.thumbnail_jpeg(source.to_pil(), THUMB_SIDE)
            except Exception:  # a thumbnail is cosmetic; the image itself is valid
                log.debug("no thumbnail for the %s image", slot, exc_info=True)
        self._thumbs[slot] = thumb
        self._info(slot, info)
        self.input_error = ""
        self._send_thumbnail(slot)

    def _info(self, slot: str, info: dict[str, Any] | None) -> None:
        if slot == "start":
            self.start_image_info = info
        else:
            self.end_image_info = info

    def continues(self, inp: "FramepackInput") -> str | None:
        """The run `inp` continues: the one Extend filled the inputs from, while its last
        frame is still the start image."""
        if self._continues is None:
            return None
        run_id, sha = self._continues
        return run_id if inp.start_image.sha256 == sha else None

    # ---------------------------------------------------------------- the error line
    def refuse(self, message: str) -> None:
        """Say what is wrong with the inputs (nothing was sent)."""
        self.input_error = message

    def accept(self) -> None:
        self.input_error = ""

    def edited(self) -> None:
        """The person edited the prompt or duration: an old complaint goes once a start image is in."""
        if self.input_error and self._images["start"] is not None:
            self.input_error = ""

    # ---------------------------------------------------------------- thumbnails
    def send_thumbnails(self) -> None:
        """Send every slot's thumbnail (to a view that just appeared)."""
        for slot in proto.SLOTS:
            self._send_thumbnail(slot)

    def _send_thumbnail(self, slot: str) -> None:
        thumb = self._thumbs.get(slot)
        if not thumb:
            return
        if thumb.get("data"):
            self._outbox.post({"type": "image", "slot": slot, "name": thumb["name"], "mime": "image/jpeg"},
                              [thumb["data"]])
        elif thumb.get("url"):
            self._outbox.post({"type": "image", "slot": slot, "name": thumb["name"], "url": thumb["url"]})
