"""The widget's image slots (start, end) and what is wrong with its inputs.

A slot holds the normalised image (`ImageSource`), the facts the browser shows beside it
(`*_image_info`) and a small JPEG thumbnail, sent as a message buffer (never a trait) when the
image is set and again to each new view. The slots also own the inputs' error line
(`input_error`) and where the start image came from (`origin`): after Extend it is a run's
last frame, and the next run records that run as its parent; after an MP4's settings were
restored, that video's. The slot says so, and keeps the image that was there before, to go
back to it; setting any other image clears the origin. Several images dropped at once on the
Start image slot are gathered here (`gather`) until the last one is in.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..errors import InvalidInputError
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput, ImageSource
    from ._outbox import Outbox

__all__ = ["MAX_BATCH_IMAGES", "THUMB_SIDE", "ImageSlots", "image_name"]

log = logging.getLogger(__name__)

THUMB_SIDE = 256
#: Images dropped at once on the Start image slot (one run each); more go through Python.
MAX_BATCH_IMAGES = 20


@dataclass
class _Held:
    """What a slot shows: the image, the facts beside it, its thumbnail."""

    source: "ImageSource"
    info: dict[str, Any]
    thumb: dict[str, Any]


@dataclass
class _Origin:
    """Where the start image came from, and the image that was there before."""

    text: str  # "last frame of run #3", "restored from wave.mp4"
    sha: str  # the start image it describes
    continues: str | None = None  # the run whose last frame it is (Extend)
    before: _Held | None = None


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
        self._held: dict[str, _Held] = {}
        self._origin: _Origin | None = None
        self._batch: tuple[str, list[tuple[bytes, str] | None]] | None = None  # (batch id, images so far)

    def get(self, slot: str) -> "ImageSource | None":
        held = self._held.get(slot)
        return held.source if held is not None else None

    def get_info(self, slot: str) -> dict[str, Any] | None:
        """What the slot shows beside its image (name, size, origin), or None when empty."""
        return self.start_image_info if slot == "start" else self.end_image_info

    def set(self, slot: str, value: Any, *, name: str | None = None, size: int | None = None,
            continues: str | None = None, origin: str | None = None) -> None:
        """Put an image in a slot (None clears it). Bad input raises InvalidInputError, which
        the error line shows too. `origin` says where a start image came from ("last frame of
        run #3"), `continues` the run whose last frame it is; without them the origin is cleared."""
        if value is None:
            self._held.pop(slot, None)
            if slot == "start":
                self._origin = None
            self._info(slot, None)
            self._outbox.post({"type": "image", "slot": slot, "clear": True})
            return
        from ..inputs import normalize_image

        try:
            source = normalize_image(value, what=f"{slot} image")
        except InvalidInputError as exc:
            self.input_error = str(exc)
            raise
        shown = name or image_name(value)
        if name or (isinstance(value, (str, os.PathLike)) and not os.fspath(value).startswith("data:")):
            source = source.named(shown)  # a file's name, or what it is ("last frame of run #3"): runs keep it
        info: dict[str, Any] = {
            "name": shown,
            "width": source.width,
            "height": source.height,
            "size": size or source.original_size or (len(source.data) if source.data else None),
        }
        if source.url:
            info["url"] = source.url
        thumb: dict[str, Any] = {"name": shown, "url": source.url}
        if source.data:
            try:
                thumb["data"] = proto.thumbnail_jpeg(source.to_pil(), THUMB_SIDE)
            except Exception:  # a thumbnail is cosmetic; the image itself is valid
                log.debug("no thumbnail for the %s image", slot, exc_info=True)
        if slot == "start":
            origin = origin or (shown if continues else None)
            before = self._held.get("start")
            if self._origin is not None:  # back goes to the image before the first Extend or restore
                before = self._origin.before
            self._origin = _Origin(origin, source.sha256, continues, before) if origin else None
        self._show(slot, _Held(source, info, thumb))

    def _show(self, slot: str, held: _Held) -> None:
        self._held[slot] = held
        info = dict(held.info)
        if slot == "start" and self._origin is not None:
            info["origin"] = self._origin.text
            if self._origin.before is not None:
                info["back"] = self._origin.before.info.get("name") or "the image before"
        self._info(slot, info)
        self.input_error = ""
        self._send_thumbnail(slot)

    @property
    def origin(self) -> dict[str, Any] | None:
        """Where the start image came from (None: the person set it): the text the slot
        shows, the run it continues, and the name of the image "back" restores."""
        origin = self._origin
        if origin is None:
            return None
        before = origin.before.info.get("name") if origin.before is not None else None
        return {"text": origin.text, "continues": origin.continues, "back_to": before}

    def back(self) -> bool:
        """Put back the start image that was there before Extend (or a restore): False when
        there is none to go back to."""
        origin = self._origin
        if origin is None or origin.before is None:
            return False
        self._origin = None
        self._show("start", origin.before)
        return True

    def _info(self, slot: str, info: dict[str, Any] | None) -> None:
        if slot == "start":
            self.start_image_info = info
        else:
            self.end_image_info = info

    def continues(self, inp: "FramepackInput") -> str | None:
        """The run `inp` continues: the one Extend filled the inputs from, while its last
        frame is still the start image."""
        origin = self._origin
        return origin.continues if origin is not None and inp.start_image.sha256 == origin.sha else None

    # ---------------------------------------------------------------- several images at once
    def gather(self, batch_id: str, index: int, count: int, data: bytes, name: str) -> list[tuple[bytes, str]] | None:
        """One of `count` images dropped together on the Start image slot; all of them (in
        order, with their names) once the last is in, else None. A new batch drops an
        unfinished one; InvalidInputError for more than `MAX_BATCH_IMAGES`."""
        if count > MAX_BATCH_IMAGES:
            self._batch = None
            raise InvalidInputError(
                f"At most {MAX_BATCH_IMAGES} images can be dropped at once (got {count}): for more, call "
                "widget.sweep(start_image=[...]) from Python."
            )
        if not 0 <= index < count:
            self._batch = None
            raise InvalidInputError("The images arrived garbled (one out of place); drop them again.")
        if self._batch is None or self._batch[0] != batch_id or len(self._batch[1]) != count:
            self._batch = (batch_id, [None] * count)
        images = self._batch[1]
        images[index] = (data, name)
        if any(image is None for image in images):
            return None
        self._batch = None
        return [image for image in images if image is not None]

    # ---------------------------------------------------------------- the error line
    def refuse(self, message: str) -> None:
        """Say what is wrong with the inputs (nothing was sent)."""
        self.input_error = message

    def accept(self) -> None:
        self.input_error = ""

    def edited(self) -> None:
        """The person edited the prompt or duration: an old complaint goes once a start image is in."""
        if self.input_error and "start" in self._held:
            self.input_error = ""

    # ---------------------------------------------------------------- thumbnails
    def send_thumbnails(self) -> None:
        """Send every slot's thumbnail (to a view that just appeared)."""
        for slot in proto.SLOTS:
            self._send_thumbnail(slot)

    def _send_thumbnail(self, slot: str) -> None:
        held = self._held.get(slot)
        thumb = held.thumb if held is not None else None
        if not thumb:
            return
        if thumb.get("data"):
            self._outbox.post({"type": "image", "slot": slot, "name": thumb["name"], "mime": "image/jpeg"},
                              [thumb["data"]])
        elif thumb.get("url"):
            self._outbox.post({"type": "image", "slot": slot, "name": thumb["name"], "url": thumb["url"]})
