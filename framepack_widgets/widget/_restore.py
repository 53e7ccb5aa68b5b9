"""Settings back from a video: every MP4 this package writes carries its run's settings (the
`comment` tag, `video.read_settings`), and a video dropped on the widget gives them back.

What comes back: the prompt, negative prompt, duration and Loop, and the start image: from
the run store when the settings name a run it has (or an image it keeps), else the video's
first frame. A video made of several runs (a timeline, a chain) gives its first part's. An
MP4 without settings, or a file that is not a video, raises InvalidInputError: nothing is
changed. Images by address are taken only from the store's own runs, never from a file's
word (a dropped file must not make the browser fetch an address it names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import MAX_DURATION, MIN_DURATION
from ..errors import FramepackError, InvalidInputError
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import ImageSource
    from ..runs import Run, Runner

__all__ = ["RestoredSettings", "settings_from_video"]

_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RestoredSettings:
    """What a video's settings give back to the widget's inputs."""

    prompt: str
    negative_prompt: str
    duration: int | None  # None: the file's is not one the widget takes (the duration stays)
    loop: bool
    start_image: "ImageSource"
    start_name: str
    end_image: "ImageSource | None"
    run: "Run | None"  # the run the settings name, when the store has it
    message: str  # what the notice says: "Settings of run #3 restored from wave.mp4."

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "negative_prompt": self.negative_prompt, "duration": self.duration,
            "loop": self.loop, "start_image": self.start_name, "run_id": self.run.run_id if self.run else None,
            "run_number": self.run.seq if self.run else None, "message": self.message,
        }


def settings_from_video(path: str | Path, *, runner: "Runner", name: str | None = None) -> RestoredSettings:
    """Read the settings `path` carries and find their start image; `name` is what the
    messages call the file (default: its own name). Nothing is changed here."""
    from ..inputs import normalize_image
    from ..video import read_settings

    path = Path(path)
    shown = name or path.name
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file, so nothing changed; give the path of an MP4 made here.")
    settings = read_settings(path)
    if settings is None:
        raise InvalidInputError(_refusal(path, shown))
    run = _stored_run(settings.get("run_id"), runner)
    params: Mapping[str, Any] = run.params if run is not None else settings
    start, start_name = _stored_image(params.get("start_image"), runner, trusted=run is not None)
    first_frame = start is None
    if start is None:
        start_name = f"first frame of {shown}"
        try:
            frame = proto.first_frame(path)
        except Exception as exc:  # noqa: BLE001 - settings, but no picture PyAV can decode
            raise InvalidInputError(f"The first frame of {shown} could not be read ({exc}), so nothing changed.") from None
        start = normalize_image(frame, what="video's first frame").named(start_name)
    loop = run.loop if run is not None else _same_image(settings.get("start_image"), settings.get("end_image"))
    end = start if loop else _stored_image(params.get("end_image"), runner, trusted=run is not None)[0]
    duration = settings.get("duration")
    valid = isinstance(duration, int) and not isinstance(duration, bool) and MIN_DURATION <= duration <= MAX_DURATION
    negative = settings.get("negative_prompt")
    whose = f"Settings of run {run.label}" if run is not None else "Settings"
    if settings.get("kind") in ("timeline", "chain"):
        whose += f" (the first part of this {settings['kind']})"
    notes = [f"{whose} restored from {shown}"]
    if first_frame:
        notes.append("the start image is its first frame")
    if loop:
        notes.append("Loop is on")
    if not valid:
        notes.append(f"its duration ({duration!r}) is not one the widget takes, so the duration stays")
    return RestoredSettings(
        prompt=settings["prompt"], negative_prompt=negative if isinstance(negative, str) else "",
        duration=duration if valid else None, loop=loop, start_image=start, start_name=start_name,
        end_image=end, run=run, message="; ".join(notes) + ".",
    )


def _refusal(path: Path, shown: str) -> str:
    """Why nothing was restored: the file is no video, or a video without settings."""
    try:
        proto.first_frame(path)
    except Exception:  # noqa: BLE001 - whatever PyAV makes of it, it is no video it can read
        return (f"{shown} is not a video this widget can read, so nothing changed. Drop an MP4 made by "
                "framepack_widgets (a run's Download video, a timeline, `framepack generate -o`), or an image.")
    return (f"{shown} carries no settings (only the MP4s framepack_widgets writes do), so nothing changed. "
            "Drop a video made here, or set its first frame as the start image from Python.")


def _stored_run(run_id: Any, runner: "Runner") -> "Run | None":
    if not isinstance(run_id, str) or not run_id:
        return None
    try:
        return runner.get(run_id)
    except (KeyError, FramepackError, ValueError):
        return None


def _stored_image(info: Any, runner: "Runner", *, trusted: bool) -> tuple["ImageSource | None", str]:
    """An image the store keeps (by hash), or, from the store's own run (`trusted`), its URL;
    with the name it was given."""
    if not isinstance(info, Mapping):
        return None, ""
    name = info.get("name") if isinstance(info.get("name"), str) else ""
    sha = info.get("sha256")
    store = runner.store
    try:
        if isinstance(sha, str) and _SHA.fullmatch(sha) and store.image_path(sha) is not None:
            source = store.image_source({"sha256": sha})
            return source.named(name), name or "the start image of that run"
        url = info.get("url")
        if trusted and isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            from ..inputs import normalize_image

            source = normalize_image(url)
            return source.named(name), name or source.url or ""
    except (FramepackError, OSError):  # a damaged or missing file: fall back to the video's frame
        pass
    return None, ""


def _same_image(start: Any, end: Any) -> bool:
    def key(info: Any) -> str | None:
        return (info.get("sha256") or info.get("url")) if isinstance(info, Mapping) else None

    return key(start) is not None and key(start) == key(end)
