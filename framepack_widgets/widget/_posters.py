"""Small poster JPEGs of runs, for the history cards, the player and the notebook's snapshot.

A run's poster is its start image (from the run store), else its video's first frame (a run
whose start image was a URL). Posters are kept by image, the newest `POSTERS_KEPT`, so a
card asked for again costs nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run, RunStore

__all__ = ["POSTER_SIDE", "POSTERS_KEPT", "Posters"]

log = logging.getLogger(__name__)

POSTER_SIDE = 320
POSTERS_KEPT = 200


class Posters:
    """The posters of one run store's runs, made on demand and kept (least recently used out)."""

    def __init__(self, store: "RunStore") -> None:
        self._store = store
        self._posters: OrderedDict[str, bytes] = OrderedDict()

    def poster(self, run: "Run") -> bytes | None:
        """A small JPEG for cards and the player: the start image, else the video's first frame."""
        start = run.start_image_sha
        key = start or run.run_id
        if key in self._posters:
            self._posters.move_to_end(key)
            return self._posters[key]
        image = None
        try:
            path = self._store.image_path(start) if start else None
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
