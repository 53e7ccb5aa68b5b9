"""What the widget writes for sharing: the comparison as one MP4, run cards, gallery folders.

Python calls (`export_comparison`, `export_run_card`, `export_html`) write into a folder and
return the path. The browser's Export and Share buttons run the same writers in a worker
thread (the kernel stays responsive), then send the file to the browser to download; the
button that asked hears how it went (`exported`: the file's name, never its folder, or the
error) and says so beside itself. Files go to the store's `exports/` folder unless told otherwise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import MAX_GALLERY_RUNS
from ..errors import InvalidInputError
from ._outbox import without_folders

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run
    from ._background import Background
    from ._comparison import Comparison
    from ._index import RunIndex
    from ._outbox import Outbox

__all__ = ["Exports"]


class Exports:
    """The exports of one widget: written where asked, or into `<store>/exports`."""

    def __init__(self, folder: Path, *, index: "RunIndex", comparison: "Comparison", outbox: "Outbox",
                 background: "Background") -> None:
        self.folder = folder
        self._index = index
        self._comparison = comparison
        self._outbox = outbox
        self._background = background

    # ---------------------------------------------------------------- the writers
    def comparison(self, path: str | os.PathLike[str] | None = None) -> Path:
        """The current comparison as one side-by-side MP4 (labelled with what differs)."""
        from ..export import export_run_comparison

        runs = self._comparison.runs()
        out = Path(path) if path is not None else self.folder / f"comparison-{runs[0].run_id[:8]}.mp4"
        return export_run_comparison(runs, out)

    def run_card(self, run: "Run | str | None" = None, folder: str | os.PathLike[str] | None = None) -> Path:
        """A run card (.zip: card.json + poster.jpg); default: the current run."""
        from ..export import export_run_card

        target = self._index.lookup(run) if run is not None else self._index.current
        if target is None:
            raise InvalidInputError("No run to export yet: generate one first, or pass a run.")
        return export_run_card(target, folder if folder is not None else self.folder)

    def gallery(self, folder: str | os.PathLike[str], runs: "Sequence[Run | str] | None" = None) -> Path:
        """A self-contained gallery in `folder`; returns its index.html. `runs` default to the
        selected runs, else every run with a video, newest first up to `MAX_GALLERY_RUNS`."""
        from ..gallery import export_gallery

        return export_gallery(self._gallery_runs(runs), folder)

    def _gallery_runs(self, runs: "Sequence[Run | str] | None") -> "list[Run]":
        if runs is not None:
            return self._index.resolve(list(runs))
        chosen = self._comparison.selected_runs()
        if not chosen:
            finished = [r for r in self._index.runs if r.video_path is not None]
            chosen = finished[-MAX_GALLERY_RUNS:]
        return chosen

    def share(self, run_ids: list[str]) -> Path:
        """The Share button: a gallery folder beside the other exports, zipped for the browser."""
        from ..gallery import zip_gallery

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        index = self.gallery(self.folder / f"gallery-{stamp}", run_ids or None)
        return zip_gallery(index.parent)

    # ---------------------------------------------------------------- the buttons
    def start(self, what: str, run_id: str | None = None, run_ids: list[str] | None = None) -> None:
        """Export for the browser: "comparison", "card" (of `run_id`) or "gallery" (of `run_ids`)."""
        if what == "gallery":
            self._background.spawn(self._download(what, lambda: self.share(run_ids or []), "application/zip"))
        elif what == "comparison":
            self._background.spawn(self._download(what, self.comparison, "video/mp4"))
        else:
            self._background.spawn(self._download(what, lambda: self.run_card(run_id), "application/zip"))

    async def _download(self, what: str, job: Callable[[], Path], mime: str) -> None:
        """Encode in a worker thread (the kernel stays responsive), then download in the browser;
        `what` (the button's export) is told the file's name or the error, without local folders."""
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, job)
            data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        except Exception as exc:
            self._outbox.post({"type": "exported", "what": what,
                               "error": without_folders(f"Export failed: {exc}", [self.folder])})
            return
        self._outbox.post({"type": "exported", "what": what, "name": path.name})
        self._outbox.send_file("download", path.name, data, mime, name=path.name)
