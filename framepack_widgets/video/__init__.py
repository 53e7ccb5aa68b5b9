"""MP4 files as this package writes them: settings inside, half-written files never in place.

- `_settings`: `write_settings` / `read_settings`, a run's settings as JSON in the MP4's
  `comment` tag, written by stream copy; `run_settings`, `combined_settings` build them.
- `_parts`: `PartFile`, a hidden `.part.mp4` renamed into place whole; `remove_stale_parts`
  clears those a killed writer left.
- `h264` (imported on its own): the H.264 facts that joining videos by stream copy
  needs (parameter sets, packet framing, x264's own settings).

Low in the layers (constants and errors only); PyAV is imported inside the functions.
"""

from __future__ import annotations

from ._parts import PART_SUFFIX, PartFile, remove_stale_parts
from ._settings import (
    MAX_SETTINGS_CHARS,
    SETTINGS_TAG,
    VideoFileError,
    combined_settings,
    read_settings,
    run_settings,
    settings_text,
    video_settings,
    write_settings,
)

__all__ = [
    "MAX_SETTINGS_CHARS",
    "PART_SUFFIX",
    "PartFile",
    "SETTINGS_TAG",
    "VideoFileError",
    "combined_settings",
    "read_settings",
    "remove_stale_parts",
    "run_settings",
    "settings_text",
    "video_settings",
    "write_settings",
]
