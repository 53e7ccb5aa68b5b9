"""A shared gallery: runs as a folder that plays in any browser, with no kernel, network or package.

The folder holds

- ``index.html``: the page, self-contained: the built gallery script and CSS
  (``static/gallery.js``, ``static/gallery.css``, bundled from ``js/src/``) inlined as they
  are, and the runs' data as JSON,
- ``videos/<run>.mp4``: copies of the runs' local videos,
- ``posters/<run>.jpg``: a frame from the middle of each video (the start image without one).

Why the script is inlined rather than copied beside the page and loaded: Chromium loads no
module file from a ``file://`` page (its origin is "null", so the import is refused as
cross-origin), and the page must open from ``file://``. The bundle already holds the
widget's own comparison panel and lock-step player (``js/src/panels/comparison.js``,
``js/src/sync.js``): no second copy.

The data holds one entry per run, cut from `export.run_card` (the run's `to_dict()` made
shareable: no local path, no URL, never the key; its number in the store and its images'
names, by which the cards and the comparison name runs), and the word diff of every pair of
distinct prompts (`compare.diff_ops`), so a viewer can compare any 2-4 runs. Those pairs
are why a gallery holds at most `MAX_GALLERY_RUNS` runs. Nothing in the page refers to
anything outside its folder.
"""

from __future__ import annotations

import errno
import html
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._assets import BUILD_HINT, frontend_file
from ._environment import umask
from .compare import diff_ops
from .constants import FPS, MAX_COMPARED, MAX_GALLERY_RUNS
from .errors import FramepackError, InvalidInputError
from .export import poster_frame, run_card

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .runs import Run

__all__ = ["GALLERY_FORMAT", "GALLERY_VERSION", "GalleryExportError", "export_gallery", "gallery_data", "read_gallery_data", "zip_gallery"]

log = logging.getLogger(__name__)

GALLERY_FORMAT = "framepack-gallery"
GALLERY_VERSION = 1
POSTER_SIDE = 640
#: What a gallery entry keeps of a run's card (the rest is for the zip card, or means
#: nothing away from this machine).
CARD_KEYS = (
    "run_id", "seq", "loop", "task_id", "stage", "status", "prompt", "negative_prompt", "duration", "backend", "simulated",
    "cost_usd", "created_at", "submitted_at", "finished_at", "wall_time", "parent_id", "timeline_id", "segment",
    "sweep_id", "start_image_sha", "end_image_sha", "error",
)
#: The ids the gallery's script reads (js/src/gallery-page.js).
DATA_ID = "fpw-gallery-data"
ROOT_ID = "fpw-gallery"


def _file_stem(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", run_id)[:40].strip("-") or "run"


def _poster(run: "Run", video: Path | None) -> "Image.Image | None":
    if video is not None:
        return poster_frame(video)
    try:
        start = run.input.start_image
        return start.to_pil().convert("RGB") if start.data else None
    except Exception:  # noqa: BLE001 - e.g. the stored image went missing: a card without poster
        log.warning("no poster for run %s", run.run_id, exc_info=True)
        return None


def gallery_data(runs: Sequence["Run"], files: dict[str, dict[str, str]], *, title: str) -> dict[str, Any]:
    """The page's data: one entry per run and the word diff of each pair of distinct prompts.
    `files` maps a run id to its "video" and "poster" paths inside the folder."""
    prompts: dict[str, int] = {}
    entries = []
    for run in runs:
        card = run_card(run)
        entry = {key: card.get(key) for key in CARD_KEYS}
        entry["p"] = prompts.setdefault(run.prompt, len(prompts))
        for key in ("start_image", "end_image"):  # the names runs are labelled by when their images differ
            name = (run.params.get(key) or {}).get("name")
            if name:
                entry[f"{key}_name"] = str(name)[:120]
        entry.update(files.get(run.run_id, {}))
        facts = card.get("video") or {}
        entry["video_facts"] = {k: facts.get(k) for k in ("width", "height", "fps", "frames", "seconds") if facts.get(k)}
        entries.append(entry)
    texts = list(prompts)
    diffs = {f"{i},{j}": diff_ops(a, b) for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j}
    return {
        "format": GALLERY_FORMAT,
        "version": GALLERY_VERSION,
        "title": title,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "fps": FPS,
        "max_compared": MAX_COMPARED,
        "runs": entries,
        "diffs": diffs,
    }


def _frontend(name: str) -> str:
    """A built frontend file's text, checked to be safe to inline into the page as it is."""
    path = frontend_file(name)
    if path is None:
        raise FileNotFoundError(f"the gallery's {name} was not built in this installation of framepack_widgets; {BUILD_HINT}")
    text = path.read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():  # would end the inline block early
        raise ValueError(f"{name} cannot be inlined into an HTML page (it contains a closing tag)")
    return text


def _carry_settings(run: "Run", copy: Path) -> None:
    """A video stored before settings travelled with videos gets its run's settings here."""
    from .video import VideoFileError, read_settings, run_settings, write_settings

    if read_settings(copy) is None:
        try:
            write_settings(copy, run_settings(run))
        except (VideoFileError, ValueError) as exc:
            log.warning("no settings written into the gallery's copy of run %s: %s", run.run_id, exc)


def _page(data: dict[str, Any]) -> str:
    """index.html: the built gallery CSS and script inlined as they are, and the runs' data.

    A classic inline script (not a module: nothing to import), placed after the elements it
    reads, so it runs once they are there."""
    # JSON inside <script>: "<" escaped so no text in it can close the element.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(data["title"])
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        # Nothing from outside the folder: no network at all, media only from the folder.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' file: blob:; media-src 'self' file: blob:\">\n"
        f"<title>{title}</title>\n<style>\n{_frontend('gallery.css')}</style>\n</head>\n<body>\n"
        f"<main id=\"{ROOT_ID}\" class=\"fpw-root fpw-gallery\"></main>\n"
        f"<script type=\"application/json\" id=\"{DATA_ID}\">{payload}</script>\n"
        f"<script>\n{_frontend('gallery.js')}</script>\n</body>\n</html>\n"
    )


class GalleryExportError(FramepackError, OSError):
    """The gallery could not be written (a full disk, a folder that refuses files); nothing
    half-written was left behind, and an earlier gallery in that folder is as it was."""


def _export_error(out: Path, exc: OSError) -> GalleryExportError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
        todo = "Free some space (or choose a folder on another disk), then export again."
    else:
        what = exc.strerror or str(exc)
        todo = "Choose a folder you can write to, then export again."
    return GalleryExportError(
        exc.errno or 0, f"Could not write the gallery in {out}: {what}. Nothing was left half-written "
        f"(an earlier gallery there is unchanged). {todo}"
    )


def _write_files(runs: Sequence["Run"], build: Path, title: str | None) -> None:
    """The whole gallery (videos, posters, index.html) into `build`, an empty folder."""
    (build / "videos").mkdir()
    (build / "posters").mkdir()
    files: dict[str, dict[str, str]] = {}
    for run in runs:
        stem = _file_stem(run.run_id)
        video = Path(run.video_path) if run.video_path is not None and Path(run.video_path).is_file() else None
        names: dict[str, str] = {}
        if video is not None:
            names["video"] = f"videos/{stem}.mp4"
            shutil.copyfile(video, build / names["video"])
            _carry_settings(run, build / names["video"])
        poster = _poster(run, video)
        if poster is not None:
            poster.thumbnail((POSTER_SIDE, POSTER_SIDE))
            names["poster"] = f"posters/{stem}.jpg"
            poster.save(build / names["poster"], "JPEG", quality=82)
        files[run.run_id] = names
    count = len(runs)
    data = gallery_data(runs, files, title=title or f"FramePack: {count} run{'' if count == 1 else 's'}")
    (build / "index.html").write_text(_page(data), encoding="utf-8")


def _move_into(build: Path, out: Path) -> None:
    """Each file of `build` renamed into `out` (same disk: no byte is copied, nothing can fill up)."""
    for path in sorted(build.rglob("*")):
        if path.is_file():
            target = out / path.relative_to(build)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def export_gallery(runs: Sequence["Run"], folder: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write a gallery of `runs` into `folder` (created if needed) and return the path of its
    ``index.html``. Open that file in any browser: the videos play, and any 2-4 runs play
    side by side in lock-step with the prompt words that differ highlighted.

    Runs without a local video get a card (and a poster from their start image) but no
    player. Files of an earlier gallery in the same folder are replaced. Everything is
    written first into a temporary folder beside (a new folder) or inside (an existing one)
    and renamed into place at the end: a full disk raises `GalleryExportError` (also an
    `OSError`) and leaves no partial copy.
    """
    runs = list(runs)
    if not runs:
        raise InvalidInputError("a gallery needs at least one run: pass runs=[...] or finish a run first")
    if len(runs) > MAX_GALLERY_RUNS:
        raise InvalidInputError(
            f"a gallery holds at most {MAX_GALLERY_RUNS} runs (got {len(runs)}): pass fewer, e.g. runs=w.runs[-20:]"
        )
    out = Path(folder)
    existed = out.is_dir()
    parent = out if existed else out.parent
    build: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=parent))
        _write_files(runs, build, title)
        if existed:
            _move_into(build, out)
        else:
            os.chmod(build, 0o777 & ~umask())  # a normal folder (mkdtemp made it 0700)
            os.rename(build, out)
            build = None
    except OSError as exc:
        raise _export_error(out, exc) from None
    finally:
        if build is not None:
            shutil.rmtree(build, ignore_errors=True)
    return out / "index.html"


def zip_gallery(folder: str | os.PathLike[str]) -> Path:
    """``<folder>.zip`` beside the gallery folder, for a browser download or a message
    (videos and posters stored as they are: they are compressed already). Returns its path."""
    import zipfile

    root = Path(folder)
    out = root.with_name(root.name + ".zip")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:10]}.part")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                method = zipfile.ZIP_DEFLATED if path.suffix == ".html" else zipfile.ZIP_STORED
                zf.write(path, f"{root.name}/{path.relative_to(root).as_posix()}", compress_type=method)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_gallery_data(index: str | os.PathLike[str]) -> dict[str, Any]:
    """The data a gallery's index.html carries (for tests and for re-reading a gallery)."""
    text = Path(index).read_text(encoding="utf-8")
    found = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', text, re.DOTALL)
    if found is None:
        raise ValueError(f"{index} is not a framepack gallery page")
    return json.loads(found.group(1))
