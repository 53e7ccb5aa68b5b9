"""The kernel's half of the conversation with the widget's views (see `_protocol` for the wire).

Each browser message has one handler here; handlers check what the browser sent and then
call the widget, so a button and the same call from Python do exactly the same thing.
Bytes go back as chunked buffers (videos, posters, downloads), never in a trait.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MAX_COMPARED, MAX_GALLERY_RUNS
from ..errors import InvalidInputError
from . import _protocol as proto
from ._uploads import UploadRefused, Uploads

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run
    from ._widget import FramepackWidget

__all__ = ["Messages"]

log = logging.getLogger(__name__)

POSTER_SIDE = 320
POSTERS_KEPT = 200
SEEN_REQUESTS = 256


class Messages:
    """Receives the views' messages for one widget and sends bytes back to them."""

    def __init__(self, widget: "FramepackWidget") -> None:
        self._widget = widget
        self._seen_requests: OrderedDict[str, None] = OrderedDict()
        self._posters: OrderedDict[str, bytes] = OrderedDict()
        self._uploads = Uploads()
        widget.on_msg(self._receive)

    # ------------------------------------------------------------------ sending
    def post(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self._widget.send(content, buffers or None)

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

    # ------------------------------------------------------------------ receiving
    def _receive(self, _widget: Any, content: Any, buffers: list | None) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return
        try:
            handler(self, content, list(buffers or []))
        except Exception as exc:
            log.exception("widget message %r failed", kind)
            self.error(f"Something went wrong in the kernel: {exc}")

    def _slot(self, content: dict) -> str:
        slot = content.get("slot")
        if slot not in proto.SLOTS:
            raise ValueError(f"unknown image slot {slot!r}")
        return str(slot)

    def _on_hello(self, content: dict, buffers: list) -> None:
        # Always answered: a view that hears nothing says the kernel is gone or busy.
        self.post({"type": "hello"})
        self._widget._send_thumbnails()

    def _on_upload(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        if not buffers:
            self.error("The image arrived empty; try again.", slot=slot)
            return
        try:
            data = self._uploads.add(slot, content, buffers[0])
        except UploadRefused as exc:
            self._widget.input_error = str(exc)
            self.error(str(exc), slot=slot)
            return
        if data is None:  # more chunks to come
            return
        name = str(content.get("name") or "image")[:120]
        size = content.get("size") if isinstance(content.get("size"), int) else None
        try:
            self._widget._set_image(slot, data, name=name, size=size)
        except InvalidInputError as exc:
            self.error(str(exc), slot=slot)

    def _on_image_url(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        url = str(content.get("url") or "").strip()
        if not url.lower().startswith(("http://", "https://")):
            self._widget.input_error = "An image URL must start with http:// or https://."
            self.error(self._widget.input_error, slot=slot)
            return
        try:
            self._widget._set_image(slot, url)
        except InvalidInputError as exc:
            self.error(str(exc), slot=slot)

    def _on_clear_image(self, content: dict, buffers: list) -> None:
        self._widget._set_image(self._slot(content), None)

    def _on_generate(self, content: dict, buffers: list) -> None:
        widget = self._widget
        request_id = str(content.get("request_id") or "")[:80]
        if self._seen(request_id):  # a double click or a second view: one task
            return
        if widget.busy:
            self.error("A submission is already in flight; wait until it has been accepted.", request_id=request_id)
            return
        try:
            for name in ("prompt", "negative_prompt"):
                if isinstance(content.get(name), str):
                    setattr(widget, name, content[name])
            if isinstance(content.get("duration"), int):
                widget.duration = content["duration"]
            run = widget.generate()
        except (InvalidInputError, t.TraitError) as exc:
            widget.input_error = str(exc)
            self.error(str(exc), request_id=request_id)
            return
        except Exception as exc:
            log.exception("generate failed")
            self.error(f"Could not start the run: {exc}", request_id=request_id,
                       hint="Nothing was sent. Try again; if it keeps failing, restart the kernel.")
            return
        self.post({"type": "generated", "request_id": request_id, "run_id": run.run_id})

    def _seen(self, request_id: str) -> bool:
        """Whether this request id came before (it is remembered now)."""
        if not request_id:
            return False
        if request_id in self._seen_requests:
            return True
        self._seen_requests[request_id] = None
        while len(self._seen_requests) > SEEN_REQUESTS:
            self._seen_requests.popitem(last=False)
        return False

    def _on_cancel(self, content: dict, buffers: list) -> None:
        self._widget.cancel(content.get("run_id") or None)

    def _on_show(self, content: dict, buffers: list) -> None:
        run = self._widget._lookup(content.get("run_id"))
        if run is not None:
            self._widget._make_current(run)

    def _on_compare(self, content: dict, buffers: list) -> None:
        ids = [str(i) for i in (content.get("run_ids") or [])][:MAX_COMPARED]
        try:
            self._widget.compare(*ids)
        except ValueError as exc:
            self.error(str(exc))

    def _on_video(self, content: dict, buffers: list) -> None:
        run_id = str(content.get("run_id"))
        run = self._widget._lookup(run_id)
        path = run.video_path if run is not None else self._widget._timelines.video(run_id)
        if path is None or not path.is_file():
            self.post({"type": "video_error", "run_id": run_id,
                       "message": "This run's video is not in the local cache (it may have been pruned)."})
            return
        self.send_file("video", run_id, path.read_bytes(), "video/mp4", run_id=run_id, nonce=content.get("nonce"))

    def _on_posters(self, content: dict, buffers: list) -> None:
        for run_id in list(content.get("run_ids") or [])[: proto.HISTORY_LIMIT]:
            run = self._widget._lookup(str(run_id))
            poster = self.poster(run) if run is not None else None
            if run is not None and poster:
                self.post({"type": "poster", "run_id": run.run_id, "mime": "image/jpeg"}, [poster])

    def _on_history(self, content: dict, buffers: list) -> None:
        widget = self._widget
        before = content.get("before")
        if isinstance(before, int):
            runs = widget.runner.list(limit=proto.HISTORY_LIMIT, before=before)
        else:
            runs = widget.runner.list(limit=proto.HISTORY_LIMIT, offset=max(0, int(content.get("offset") or 0)))
        widget._remember(runs)
        self.post({"type": "history_page", "total": widget.store.count(), "runs": widget._timelines.cards(runs)})

    def _on_sweep(self, content: dict, buffers: list) -> None:
        action = content.get("action")
        if action in ("confirm", "cancel"):
            self._widget._sweep_action(str(content.get("sweep_id")), action)

    def _on_queued(self, content: dict, buffers: list) -> None:
        action = content.get("action")
        if action == "send":
            self._widget.send_queued()
        elif action == "discard":
            self._widget.discard_queued()

    def _on_export(self, content: dict, buffers: list) -> None:
        what = content.get("what")
        if what in ("comparison", "card"):
            self._widget._start_export(what, content.get("run_id"))

    def _on_share(self, content: dict, buffers: list) -> None:
        ids = [str(i) for i in (content.get("run_ids") or [])][:MAX_GALLERY_RUNS]
        self._widget._start_export("gallery", None, ids)
    def _on_extend(self, content: dict, buffers: list) -> None:
        run_id = str(content.get("run_id") or "")
        try:
            self._widget.extend_from(run_id or None)
        except (InvalidInputError, ValueError, OSError) as exc:
            self.error(f"Could not extend that run: {exc}")
            return
        self.post({"type": "extended", "run_id": run_id})

    def _on_timeline(self, content: dict, buffers: list) -> None:
        panel = self._widget._timelines
        action = content.get("action")
        timeline_id = str(content.get("timeline_id") or "")
        if action != "start":
            if action in ("cancel", "retry"):
                try:
                    panel.act(timeline_id, action, content.get("segment"))
                except InvalidInputError as exc:
                    self.error(str(exc), timeline_id=timeline_id)
            return
        request_id = str(content.get("request_id") or "")[:80]
        if self._seen(request_id):  # a double click or a second view: one timeline
            return
        segments = content.get("segments")
        try:
            timeline = panel.start_from_panel(segments if isinstance(segments, list) else [], content.get("shown_cost"),
                                              timeline_id or None)
        except InvalidInputError as exc:
            self.error(str(exc), request_id=request_id)
            return
        self.post({"type": "timeline_started", "request_id": request_id, "timeline_id": timeline.timeline_id})

    def _on_chain(self, content: dict, buffers: list) -> None:
        try:
            self._widget.show_chain(str(content.get("run_id") or ""))
        except (ValueError, InvalidInputError) as exc:
            self.error(str(exc))

    # ------------------------------------------------------------------ posters
    def poster(self, run: "Run") -> bytes | None:
        """A small JPEG for cards and the player: the start image, else the video's first frame."""
        start = run.start_image_sha
        key = start or run.run_id
        if key in self._posters:
            self._posters.move_to_end(key)
            return self._posters[key]
        image = None
        try:
            path = self._widget.store.image_path(start) if start else None
            if path is not None:
                from PIL import Image

                with Image.open(path) as opened:
                    image = opened.convert("RGB")
            elif run.video_path is not None and Path(run.video_path).is_file():
                image = proto.first_frame(run.video_path)
                key = run.run_id
        except Exception as exc:
            log.debug("no poster for %s: %s", run.run_id, exc)
        if image is None:
            return None
        poster = proto.thumbnail_jpeg(image, POSTER_SIDE, quality=75)
        self._posters[key] = poster
        while len(self._posters) > POSTERS_KEPT:
            self._posters.popitem(last=False)
        return poster


_HANDLERS = {
    "hello": Messages._on_hello,
    "upload": Messages._on_upload,
    "image_url": Messages._on_image_url,
    "clear_image": Messages._on_clear_image,
    "generate": Messages._on_generate,
    "cancel": Messages._on_cancel,
    "show": Messages._on_show,
    "compare": Messages._on_compare,
    "video": Messages._on_video,
    "posters": Messages._on_posters,
    "history": Messages._on_history,
    "sweep": Messages._on_sweep,
    "export": Messages._on_export,
    "queued": Messages._on_queued,
    "share": Messages._on_share,
    "extend": Messages._on_extend,
    "timeline": Messages._on_timeline,
    "chain": Messages._on_chain,
}
