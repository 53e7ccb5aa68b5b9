"""How the simulator words a task's state: its profile, the status words and where the video goes.

Why apart from the clock: the clock decides *what* a task's state is; this module decides
how an answer *says* it, and PiAPI's docs, its CLI and its MCP server show many ways.

- profiles: "realistic" (the default) answers as PiAPI documents Framepack: no percent,
  `output: null` until the video exists, empty logs. "rich" reports a percent and
  FramePack-like log lines while processing (what some other PiAPI models do).
- status words: a task may say "Completed" instead of "completed", or a word no client
  knows ("generating"); `STATUS_WORDS` and `capitalised()` build such mappings.
- output shapes: where a completed task puts its video URL (`OUTPUT_SHAPES`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidInputError

__all__ = [
    "DEFAULT_PROFILE",
    "OUTPUT_SHAPES",
    "PROFILES",
    "PROFILE_ENV",
    "STATUSES",
    "capitalised",
    "check_output_shape",
    "check_status_words",
    "resolve_profile",
    "video_output",
    "word_for",
]

PROFILES = ("realistic", "rich")
DEFAULT_PROFILE = "realistic"
#: Chooses the profile of simulators made without `profile=` (the widget's, the CLI's, tests').
PROFILE_ENV = "FRAMEPACK_SIM_PROFILE"
#: The statuses the simulator's clock produces (before any word replaces them).
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")


def resolve_profile(profile: str | None) -> str:
    """`profile`, else FRAMEPACK_SIM_PROFILE, else "realistic"; ValueError for anything else."""
    value = profile if profile is not None else (os.environ.get(PROFILE_ENV) or "").strip() or DEFAULT_PROFILE
    value = str(value).strip().lower()
    if value not in PROFILES:
        where = f"{PROFILE_ENV}={profile!r}" if profile is None else f"profile={profile!r}"
        raise InvalidInputError(f"unknown simulator profile ({where}); use one of {', '.join(PROFILES)}")
    return value


def _watermarked(url: str) -> str:
    return f"{url}?watermark=1"


#: name -> the completed output for a video URL. "video_url" is the documented Framepack shape;
#: the others are where other PiAPI models put theirs (the client must find them all).
OUTPUT_SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "video_url": lambda url: {"video_url": url},
    "video": lambda url: {"video": url},
    "video_object": lambda url: {"video": {"url": url, "width": 640, "height": 360}},
    "video_resource": lambda url: {"video": {"resource": _watermarked(url), "resource_without_watermark": url}},
    "video_list": lambda url: {"video": [url]},
    "video_urls": lambda url: {"video_urls": [url]},
    "works_video": lambda url: {"status": 99, "works": [{
        "cover": {"resource": url.rsplit(".", 1)[0] + ".png", "resource_without_watermark": ""},
        "video": {"resource": _watermarked(url), "resource_without_watermark": url, "duration": 10000},
    }]},
    "works_resource": lambda url: {"works": [{"resource": {"resource": _watermarked(url),
                                                           "resourceWithoutWatermark": url}}]},
    "nested": lambda url: {"result": {"files": [{"kind": "video", "href": url}]}},
}


def check_output_shape(shape: str) -> str:
    if shape not in OUTPUT_SHAPES:
        raise InvalidInputError(f"unknown output shape {shape!r}; use one of {', '.join(OUTPUT_SHAPES)}")
    return shape


def video_output(url: str, shape: str | None) -> dict[str, Any]:
    """A completed task's output with its video at `url`, in `shape` (default: video_url)."""
    return OUTPUT_SHAPES[shape or "video_url"](url)


def capitalised() -> dict[str, str]:
    """What one PiAPI schema page shows: "Pending", "Processing", "Completed", ..."""
    return {status: status.capitalize() for status in STATUSES}


def check_status_words(words: Mapping[str, str]) -> dict[str, str]:
    """A mapping of clock statuses to the words answers use instead."""
    out: dict[str, str] = {}
    for status, word in dict(words).items():
        if status not in STATUSES:
            raise InvalidInputError(f"unknown status {status!r} in status words; use {', '.join(STATUSES)}")
        if not isinstance(word, str):
            raise InvalidInputError(f"the word for {status!r} must be a string, not {word!r}")
        out[status] = word
    return out


def word_for(status: str, words: Mapping[str, str] | None) -> str:
    return words.get(status, status) if words else status
