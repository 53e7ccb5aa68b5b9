"""A run's settings travel inside its MP4: one JSON object in the file's `comment` tag.

What the object holds (`settings_text` checks it): always `prompt`, `negative_prompt`,
`duration`, `model`, `run_id`, `parent_id` (null when unknown), `made_by`
("framepack_widgets <version>"), and, when known, `task_id`, `timeline_id`, `segment`,
`simulated`, `start_image`/`end_image` (`{"sha256": ...}` for an image kept in the run
store, `{"url": ...}` without query or password for one given by address) and any other
parameter of the run. A video made of several runs (a stitched timeline or chain, a
side-by-side comparison) says so in `kind` ("timeline", "chain", "comparison") and lists
every part's own settings under `parts`; its top-level settings are its first part's (what
a person gets back when they drop the video on the widget), with `duration` still that
part's own and the whole video's length in `total_duration`.

Written without touching a frame: mutagen (the tagging library) rewrites only the file's
metadata boxes in a copy beside the video, which then replaces it; every track and packet
stays as it was. `read_settings` never raises for a file without settings, with a damaged
tag or one that is not ours: it returns None.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..constants import MODEL, VERSION
from ..errors import FramepackError
from ._parts import PartFile

__all__ = [
    "MAX_SETTINGS_CHARS",
    "SETTINGS_TAG",
    "VideoFileError",
    "combined_settings",
    "read_settings",
    "run_settings",
    "settings_text",
    "video_settings",
    "write_settings",
]

SETTINGS_TAG = "comment"
#: The MP4 box that FFmpeg, PyAV and mutagen all read and write as the `comment` tag.
_COMMENT_BOX = "\xa9cmt"
#: Longest settings text written or read back (20 segments of 2,000-character prompts fit).
MAX_SETTINGS_CHARS = 1_000_000
REQUIRED_KEYS = ("prompt", "negative_prompt", "duration", "model", "run_id", "parent_id")
MADE_BY = f"framepack_widgets {VERSION}"


class VideoFileError(FramepackError):
    """The file is not an MP4 video this package can read or rewrite."""


def video_settings(
    *,
    prompt: str,
    negative_prompt: str = "",
    duration: int | None = None,
    run_id: str | None = None,
    parent_id: str | None = None,
    model: str = MODEL,
    **more: Any,
) -> dict[str, Any]:
    """The settings object for one run's video (`more`: task_id, timeline_id, segment,
    simulated, seed, start_image/end_image as `to_params()` gives them, ...; None values
    are left out, and an image given by address loses its query and password)."""
    settings: dict[str, Any] = {
        "prompt": str(prompt), "negative_prompt": str(negative_prompt or ""), "duration": duration,
        "model": model, "run_id": run_id, "parent_id": parent_id,
    }
    for key in ("start_image", "end_image"):
        if key in more:
            more[key] = _image(more[key])
    settings.update({k: v for k, v in more.items() if v is not None and k not in settings})
    settings["made_by"] = MADE_BY
    return settings


def run_settings(run: Any) -> dict[str, Any]:
    """The settings of a `Run` (read through its public fields: `prompt`, `params`, ...)."""
    params = getattr(run, "params", None) or {}
    extra = {k: v for k, v in params.items()
             if k not in ("prompt", "negative_prompt", "duration", "start_image", "end_image")}
    return video_settings(
        prompt=run.prompt, negative_prompt=run.negative_prompt, duration=run.duration, run_id=run.run_id,
        parent_id=run.parent_id, task_id=getattr(run, "task_id", None), timeline_id=getattr(run, "timeline_id", None),
        segment=getattr(run, "segment", None), simulated=getattr(run, "simulated", None),
        start_image=params.get("start_image"), end_image=params.get("end_image"), **extra,
    )


def combined_settings(kind: str, parts: Sequence[Mapping[str, Any]], **more: Any) -> dict[str, Any]:
    """The settings of a video made of several runs' (`kind`: "timeline", "chain" or
    "comparison"): the first part's settings at the top, every part's under `parts`."""
    if not parts:
        raise ValueError("a combined video needs the settings of at least one part")
    first = dict(parts[0])
    durations = [p.get("duration") for p in parts]
    if kind == "comparison":
        total = max((d for d in durations if isinstance(d, (int, float))), default=None)
    else:
        total = sum(d for d in durations if isinstance(d, (int, float))) if all(
            isinstance(d, (int, float)) for d in durations) else None
    settings = {**first, "kind": kind, "total_duration": total,
                **{k: v for k, v in more.items() if v is not None}}
    settings["parts"] = [dict(p) for p in parts]
    settings["made_by"] = MADE_BY
    return settings


def settings_text(settings: Mapping[str, Any]) -> str:
    """The tag's text: compact JSON (ASCII, so every tag reader keeps it intact)."""
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a mapping, not {type(settings).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in settings]
    if missing:
        raise ValueError(f"the settings lack {', '.join(missing)}")
    try:
        text = json.dumps(dict(settings), ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError as exc:
        raise ValueError(f"the settings cannot be written as JSON: {exc}") from None
    if len(text) > MAX_SETTINGS_CHARS:
        raise ValueError(f"the settings are {len(text):,} characters of JSON; at most {MAX_SETTINGS_CHARS:,} fit")
    return text


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings an MP4 carries, or None (no such tag, not JSON, not an object with a
    text `prompt`, too long, or not an MP4 at all). Never raises for a bad file."""
    from mutagen import MutagenError
    from mutagen.mp4 import MP4

    try:
        if not Path(path).is_file():
            return None
        tags = MP4(os.fspath(path)).tags
    except (MutagenError, OSError, ValueError, EOFError):
        return None
    values = tags.get(_COMMENT_BOX) if tags is not None else None
    text = values[0] if isinstance(values, list) and values else None
    if not isinstance(text, str) or not text or len(text) > MAX_SETTINGS_CHARS:
        return None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
        return None
    return value


def write_settings(path: str | os.PathLike[str], settings: Mapping[str, Any]) -> Path:
    """Put `settings` into the MP4 at `path` without touching a frame: a copy beside it gets
    the tag (only its metadata boxes change; every track, packet and other tag as it was)
    and replaces the file whole (its mode kept), or nothing changes. Raises VideoFileError
    for a file that is not an MP4 video, OSError when its folder cannot be written."""
    from mutagen import MutagenError
    from mutagen.mp4 import MP4

    text = settings_text(settings)
    source = Path(path)
    try:
        mode = source.stat().st_mode & 0o777
    except OSError as exc:
        raise VideoFileError(f"{source}: cannot read it ({exc.strerror or exc}); no settings were written") from None
    if not source.is_file():
        raise VideoFileError(f"{source} is not a file: no settings were written")
    with PartFile(source, mode=mode) as part:
        shutil.copyfile(source, part.path)
        try:
            mp4 = MP4(os.fspath(part.path))
            if not _has_video_track(part.path):
                raise VideoFileError(f"{source} holds no video stream: no settings were written")
            if mp4.tags is None:
                mp4.add_tags()
            mp4.tags[_COMMENT_BOX] = [text]
            mp4.save()
        except (MutagenError, EOFError) as exc:
            raise VideoFileError(f"{source} is not an MP4 video this package can tag ({exc}); no settings were "
                                 "written") from None
        return part.commit()


def _has_video_track(path: Path) -> bool:
    """Whether the MP4 has a track whose handler is video (`hdlr` of type `vide`)."""
    from mutagen.mp4 import Atoms

    with open(path, "rb") as file:
        atoms = Atoms(file)
        for track in atoms[b"moov"].findall(b"trak"):
            try:
                ok, data = track[b"mdia", b"hdlr"].read(file)
            except KeyError:
                continue
            if ok and data[8:12] == b"vide":
                return True
    return False


def _image(info: object) -> dict[str, str] | None:
    """How a run's image is found again, without what must not travel (URL tokens, passwords)."""
    if not isinstance(info, Mapping):
        return None
    if isinstance(info.get("sha256"), str):
        return {"sha256": info["sha256"]}
    url = info.get("url")
    if isinstance(url, str) and url:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
        except ValueError:  # a port that is not a number
            return None
        return {"url": urlunsplit((parts.scheme, netloc, parts.path, "", ""))}
    return None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")

