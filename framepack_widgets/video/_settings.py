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

Written by stream copy: the packets are remuxed unchanged into a temporary file beside the
video, which then replaces it. `read_settings` never raises for a file without settings,
with a damaged tag or one that is not ours: it returns None.
"""

from __future__ import annotations

import json
import os
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
#: Longest settings text written or read back (20 segments of 2,000-character prompts fit).
MAX_SETTINGS_CHARS = 1_000_000
REQUIRED_KEYS = ("prompt", "negative_prompt", "duration", "model", "run_id", "parent_id")
MADE_BY = f"framepack_widgets {VERSION}"
#: Container tags the muxer writes itself (copying them would only repeat its own).
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", SETTINGS_TAG}


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
    text `prompt`, too long, or not a video at all). Never raises for a bad file."""
    import av

    try:
        if not Path(path).is_file():
            return None
        with av.open(str(path), metadata_errors="replace") as container:
            text = container.metadata.get(SETTINGS_TAG)
    except (OSError, ValueError, av.FFmpegError):
        return None
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
    """Put `settings` into the MP4 at `path` by stream copy: every video and audio packet
    as it was (other tracks, such as timecodes, are left out), the container's other tags
    kept, the file replaced whole (its mode kept) or not at all. Raises VideoFileError for
    a file that is not an MP4 video, OSError when its folder cannot be written."""
    import av

    text = settings_text(settings)
    source = Path(path)
    try:
        mode = source.stat().st_mode & 0o777
    except OSError as exc:
        raise VideoFileError(f"{source}: cannot read it ({exc.strerror or exc}); no settings were written") from None
    try:
        with av.open(str(source)) as inp, PartFile(source, mode=mode) as part:
            if "mp4" not in inp.format.name.split(","):
                raise VideoFileError(f"{source} is a {inp.format.long_name} file, not an MP4: no settings were written")
            streams = [s for s in inp.streams if s.type in ("video", "audio")]
            if not any(s.type == "video" for s in streams):
                raise VideoFileError(f"{source} holds no video stream: no settings were written")
            with av.open(str(part.path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                out.metadata.update({k: v for k, v in inp.metadata.items() if k not in _MUXER_TAGS})
                out.metadata[SETTINGS_TAG] = text
                copies = {}
                for stream in streams:
                    copy = out.add_stream_from_template(stream)
                    copy.metadata.update(stream.metadata)
                    copies[stream.index] = copy
                mux = out.mux_one
                for packet in inp.demux(streams):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = copies[packet.stream_index]
                    mux(packet)
            return part.commit()
    except av.FFmpegError as exc:
        raise VideoFileError(f"{source} could not be read as a video ({exc}); no settings were written") from None


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

