"""The kernel's half of the conversation with the widget's views (see `_protocol` for the wire).

One handler per browser message: it checks what the browser sent, then hands it to the part
that owns that state (image slots, run index, comparison, sweep and timeline panels, queued
runs, exports) or to the widget's own action (`ViewActions`: the same methods Python calls),
so a button and the call from Python do exactly the same thing. Replies and bytes go back
through the `Outbox` (chunked buffers, never a trait). A new message: add its handler here
and its line to `_protocol`'s table.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MAX_COMPARED, MAX_GALLERY_RUNS
from ..errors import InvalidInputError
from . import _protocol as proto
from ._uploads import UploadRefused, Uploads

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run
    from ._classroom import ClassPanel
    from ._comparison import Comparison
    from ._exports import Exports
    from ._index import RunIndex
    from ._outbox import Outbox
    from ._posters import Posters
    from ._queue import QueuedRuns
    from ._slots import ImageSlots
    from ._sweep_panel import SweepPanel
    from ._timelines import TimelinesPanel

__all__ = ["Messages", "ViewActions"]

log = logging.getLogger(__name__)

SEEN_REQUESTS = 256

Handler = Callable[[dict, list], None]


#: What a person can do when a view sends what the kernel cannot read (an old or damaged view).
RELOAD = "Reload the widget's view (or run its notebook cell again)."


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _whole(value: Any) -> int | None:
    """A whole number from the browser (not a bool, a fraction or text), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shown(value: Any) -> str:
    """A value from the browser, short, for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "\u2026"


def _run_id(value: Any) -> str | None:
    """A run id from the browser: text, else None (nothing else names a run)."""
    return value if isinstance(value, str) else None


def _run_ids(value: Any) -> list[str] | None:
    """A list of run ids from the browser (its entries as text); None when it is no list."""
    return [str(i) for i in value] if isinstance(value, list) else None


@dataclass(frozen=True)
class ViewActions:
    """What the browser's buttons do through the widget's own methods (Python calls them too)."""

    #: Generate with the browser's edits ({"prompt", "negative_prompt", "duration"}, any of them).
    generate: Callable[[dict[str, Any]], "Run"]
    cancel: Callable[["str | None"], None]
    extend: Callable[["str | None"], None]
    #: Several images dropped at once on the Start image slot ([(bytes, name), ...]): an image sweep.
    sweep_images: Callable[[list[tuple[bytes, str]]], Any]
    #: An MP4 dropped on the widget (bytes, file name): its settings back into the inputs.
    restore: Callable[[bytes, str], Any]
    #: The Start image slot's "back to ...": the image before Extend (or a restore).
    back: Callable[[], bool]


class Messages:
    """Receives the views' messages for one widget (`receive`, given to `widget.on_msg`)."""

    def __init__(self, outbox: "Outbox", *, actions: ViewActions, slots: "ImageSlots", index: "RunIndex",
                 posters: "Posters", comparison: "Comparison", sweeps: "SweepPanel", queue: "QueuedRuns",
                 exports: "Exports", timelines: "TimelinesPanel", classroom: "ClassPanel | None" = None) -> None:
        self._outbox = outbox
        self._actions = actions
        self._slots = slots
        self._index = index
        self._posters = posters
        self._comparison = comparison
        self._sweeps = sweeps
        self._queue = queue
        self._exports = exports
        self._timelines = timelines
        self._classroom = classroom
        self._seen_requests: OrderedDict[str, None] = OrderedDict()
        self._uploads = Uploads()
        self._handlers: dict[str, Handler] = {
            "hello": self._on_hello,
            "upload": self._on_upload,
            "image_url": self._on_image_url,
            "clear_image": self._on_clear_image,
            "image_back": self._on_image_back,
            "generate": self._on_generate,
            "cancel": self._on_cancel,
            "show": self._on_show,
            "compare": self._on_compare,
            "video": self._on_video,
            "posters": self._on_posters,
            "history": self._on_history,
            "sweep": self._on_sweep,
            "export": self._on_export,
            "queued": self._on_queued,
            "share": self._on_share,
            "extend": self._on_extend,
            "timeline": self._on_timeline,
            "chain": self._on_chain,
            "class_share": self._on_class_share,
        }

    def receive(self, _widget: Any, content: Any, buffers: list | None) -> None:
        """One message from a view (ipywidgets' `on_msg` signature); unknown ones are ignored."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return
        try:
            handler(content, list(buffers or []))
        except InvalidInputError as exc:  # written for people (a budget refused, too): say it as it is
            self._outbox.error(str(exc))
        except Exception as exc:
            log.exception("widget message %r failed", kind)
            self._outbox.error(f"Something went wrong in the kernel while it handled the view's {kind!r} message "
                               f"({type(exc).__name__}; the kernel's log has the details).",
                               hint=f"Try again. If it keeps happening, {RELOAD[0].lower()}{RELOAD[1:-1]}, "
                                    "or restart the kernel.")

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

    @staticmethod
    def _slot(content: dict) -> str:
        slot = content.get("slot")
        if not isinstance(slot, str) or slot not in proto.SLOTS:
            raise InvalidInputError(f"The view sent an image for the slot {_shown(slot)}, but there are only the "
                                    f"start and end image slots. {RELOAD}")
        return slot

    # ---------------------------------------------------------------- views and images
    def _on_hello(self, content: dict, buffers: list) -> None:
        # Always answered: a view that hears nothing says the kernel is gone or busy.
        self._outbox.post({"type": "hello"})
        self._slots.send_thumbnails()
        if self._classroom is not None:
            self._classroom.open()  # in a class: the budget, read on the loop the view's messages run on

    def _on_upload(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        if not buffers:
            self._outbox.error("The image arrived empty; try again.", slot=slot)
            return
        try:
            data = self._uploads.add(slot, content, buffers[0])
        except UploadRefused as exc:
            self._slots.refuse(str(exc))
            self._outbox.error(str(exc), slot=slot)
            return
        if data is None:  # more chunks to come
            return
        name = str(content.get("name") or "image")[:120]
        size = content.get("size") if isinstance(content.get("size"), int) else None
        batch = content.get("batch")  # [id, index, count] of several images dropped at once
        try:
            mime = str(content.get("mime") or "")
            if mime.startswith("video/") or (not mime.startswith("image/") and data[4:8] == b"ftyp"):
                self._actions.restore(data, name)  # an MP4: its settings, not an image
            elif isinstance(batch, list) and len(batch) == 3 and slot == "start":
                images = self._slots.gather(str(batch[0])[:40], _int(batch[1]), _int(batch[2]), data, name)
                if images is not None:
                    self._actions.sweep_images(images)
            else:
                self._slots.set(slot, data, name=name, size=size)
        except InvalidInputError as exc:
            self._slots.refuse(str(exc))
            self._outbox.error(str(exc), slot=slot)

    def _on_image_url(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        url = str(content.get("url") or "").strip()
        if not url.lower().startswith(("http://", "https://")):
            message = "An image URL must start with http:// or https://."
            self._slots.refuse(message)
            self._outbox.error(message, slot=slot)
            return
        try:
            self._slots.set(slot, url)
        except InvalidInputError as exc:
            self._outbox.error(str(exc), slot=slot)

    def _on_clear_image(self, content: dict, buffers: list) -> None:
        self._slots.set(self._slot(content), None)

    def _on_image_back(self, content: dict, buffers: list) -> None:
        self._actions.back()

    # ---------------------------------------------------------------- runs
    def _on_generate(self, content: dict, buffers: list) -> None:
        request_id = str(content.get("request_id") or "")[:80]
        if self._seen(request_id):  # a double click or a second view: one task
            return
        if self._index.busy:
            self._outbox.error("A submission is already in flight; wait until it has been accepted.",
                               request_id=request_id)
            return
        edits: dict[str, Any] = {name: content[name] for name in ("prompt", "negative_prompt")
                                 if isinstance(content.get(name), str)}
        if isinstance(content.get("duration"), int):
            edits["duration"] = content["duration"]
        try:
            run = self._actions.generate(edits)
        except (InvalidInputError, t.TraitError) as exc:
            self._slots.refuse(str(exc))
            self._outbox.error(str(exc), request_id=request_id)
            return
        except Exception as exc:
            log.exception("generate failed")
            self._outbox.error(f"Could not start the run: {exc}", request_id=request_id,
                               hint="Nothing was sent. Try again; if it keeps failing, restart the kernel.")
            return
        self._outbox.post({"type": "generated", "request_id": request_id, "run_id": run.run_id})

    def _on_cancel(self, content: dict, buffers: list) -> None:
        given = content.get("run_id")
        run_id = _run_id(given)
        if given is not None and run_id is None:  # never "the current run" for a garbled id
            self._outbox.error(f"Nothing was cancelled: the view named the run {_shown(given)}, which is no run id. "
                               f"{RELOAD} Then press Cancel again.")
            return
        self._actions.cancel(run_id or None)

    def _on_show(self, content: dict, buffers: list) -> None:
        run = self._index.lookup(_run_id(content.get("run_id")))  # an unknown run: nothing to show
        if run is not None:
            self._index.make_current(run)

    def _on_video(self, content: dict, buffers: list) -> None:
        run_id = str(content.get("run_id"))[:80]
        run = self._index.lookup(run_id)
        path = run.video_path if run is not None else self._timelines.video(run_id)
        if path is None or not path.is_file():
            self._outbox.post({"type": "video_error", "run_id": run_id,
                               "message": "This run's video is not in the local cache (it may have been pruned)."})
            return
        self._outbox.send_file("video", run_id, path.read_bytes(), "video/mp4", run_id=run_id,
                               nonce=content.get("nonce"))

    def _on_posters(self, content: dict, buffers: list) -> None:
        # Posters only decorate cards: ids that are not a list of run ids are passed over quietly.
        for run_id in (_run_ids(content.get("run_ids")) or [])[: proto.HISTORY_LIMIT]:
            run = self._index.lookup(run_id)
            poster = self._posters.poster(run) if run is not None else None
            if run is not None and poster:
                self._outbox.post({"type": "poster", "run_id": run.run_id, "mime": "image/jpeg"}, [poster])

    def _on_history(self, content: dict, buffers: list) -> None:
        # "Older runs": a page before a card's seq, or at an offset. A page out of range is an
        # empty (or the newest) page; what is not a whole number cannot name a page at all.
        key = "before" if content.get("before") is not None else "offset"
        asked = content.get(key)
        where = _whole(asked if asked is not None else 0)
        if where is None:
            self._outbox.error(f"Could not load older runs: the view asked for the page at {key} {_shown(asked)}, "
                               f"which is not a whole number. {RELOAD}")
            return
        page = self._index.page(before=where) if key == "before" else self._index.page(offset=where)
        self._outbox.post({"type": "history_page", **page})

    # ---------------------------------------------------------------- panels
    def _on_compare(self, content: dict, buffers: list) -> None:
        given = content.get("run_ids")
        ids = _run_ids(given if given is not None else [])
        if ids is None:
            self._outbox.error(f"Could not compare: the view sent {_shown(given)} where a list of run ids belongs. "
                               f"{RELOAD}")
            return
        try:
            self._comparison.show(ids[:MAX_COMPARED])
        except ValueError as exc:
            self._outbox.error(str(exc))

    def _on_sweep(self, content: dict, buffers: list) -> None:
        action = content.get("action")
        if action in ("confirm", "cancel"):
            self._sweeps.act(str(content.get("sweep_id")), action)

    def _on_queued(self, content: dict, buffers: list) -> None:
        action = content.get("action")
        if action == "send":
            self._queue.send()
        elif action == "discard":
            self._queue.discard()

    def _on_export(self, content: dict, buffers: list) -> None:
        what = content.get("what")
        given = content.get("run_id")
        if given is not None and _run_id(given) is None:
            self._outbox.error(f"Nothing was exported: the view named the run {_shown(given)}, which is no run id. "
                               f"{RELOAD}")
            return
        if what in ("comparison", "card"):
            self._exports.start(what, _run_id(given))

    def _on_share(self, content: dict, buffers: list) -> None:
        given = content.get("run_ids")
        ids = _run_ids(given if given is not None else [])
        if ids is None:
            self._outbox.error(f"No gallery was written: the view sent {_shown(given)} where a list of run ids "
                               f"belongs. {RELOAD}")
            return
        self._exports.start("gallery", None, ids[:MAX_GALLERY_RUNS])

    def _on_extend(self, content: dict, buffers: list) -> None:
        given = content.get("run_id")
        run_id = _run_id(given) or ""
        if given is not None and _run_id(given) is None:
            self._outbox.error(f"Could not extend: the view named the run {_shown(given)}, which is no run id. "
                               f"{RELOAD}")
            return
        try:
            self._actions.extend(run_id or None)
        except (InvalidInputError, ValueError, OSError) as exc:
            self._outbox.error(f"Could not extend that run: {exc}")
            return
        self._outbox.post({"type": "extended", "run_id": run_id})

    def _on_timeline(self, content: dict, buffers: list) -> None:
        action = content.get("action")
        timeline_id = str(content.get("timeline_id") or "")
        if action != "start":
            if action in ("cancel", "retry"):
                try:
                    self._timelines.act(timeline_id, action, content.get("segment"))
                except InvalidInputError as exc:
                    self._outbox.error(str(exc), timeline_id=timeline_id)
            return
        request_id = str(content.get("request_id") or "")[:80]
        if self._seen(request_id):  # a double click or a second view: one timeline
            return
        segments = content.get("segments")
        try:
            timeline = self._timelines.start_from_panel(segments if isinstance(segments, list) else [],
                                                        content.get("shown_cost"), timeline_id or None)
        except InvalidInputError as exc:
            self._outbox.error(str(exc), request_id=request_id)
            return
        self._outbox.post({"type": "timeline_started", "request_id": request_id, "timeline_id": timeline.timeline_id})

    def _on_chain(self, content: dict, buffers: list) -> None:
        try:
            self._timelines.show_chain(str(content.get("run_id") or ""))
        except (ValueError, InvalidInputError) as exc:
            self._outbox.error(str(exc))

    def _on_class_share(self, content: dict, buffers: list) -> None:
        shared = content.get("shared")
        if self._classroom is not None and isinstance(shared, bool):
            self._classroom.share(str(content.get("run_id") or ""), shared)
