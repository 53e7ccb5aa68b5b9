"""What every `framepack` command shares: the options and words about the backend.

Without PIAPI_API_KEY a command runs on the offline simulator, and says so.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from .._environment import sim_time_scale
from ..errors import InvalidInputError

__all__ = [
    "add_backend_options",
    "money",
    "positive",
    "simulator_notice",
    "time_scale",
    "uses_api",
    "writable_file",
    "writable_folder",
]


def uses_api() -> bool:
    """True when a key is set, so tasks go to PiAPI (and cost money)."""
    return bool(os.environ.get("PIAPI_API_KEY"))


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sim-time-scale",
        type=float,
        default=None,
        help="offline simulator only: how many times faster than real time tasks run "
        "(default: FRAMEPACK_SIM_TIME_SCALE, else 8)",
    )


def time_scale(args: argparse.Namespace) -> float:
    """--sim-time-scale, else FRAMEPACK_SIM_TIME_SCALE, else 8; checked (InvalidInputError)."""
    if args.sim_time_scale is None:
        return sim_time_scale(8.0)
    return positive("--sim-time-scale", args.sim_time_scale)


def simulator_notice(what: str) -> str:
    """The line that says the simulator is in use; `what`: "the video is" / "the videos are"."""
    return (
        "framepack: no PIAPI_API_KEY set, using the offline simulator "
        f"({what} synthetic, not FramePack's; nothing is charged)"
    )


def money(value: float) -> str:
    return f"${value:,.2f}"


def positive(option: str, value: float) -> float:
    """A finite number above zero, or InvalidInputError naming the option."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{option} must be a number above 0, not {value}.")
    return float(value)


def _probe(folder: Path, option: str) -> None:
    """Write and remove a file in `folder`: what permissions say and what the disk does can differ."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".framepack-probe-"):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"{option}: cannot write in {folder} ({exc.strerror or exc}). Choose a folder you can write to. "
            "Nothing was sent."
        ) from None


def writable_file(path: Path, option: str = "-o/--output") -> Path:
    """Where a file can be written: its folder exists (or is made now) and takes a file,
    checked before anything is paid for."""
    if path.is_dir():
        raise InvalidInputError(f"{option}: {path} is a folder; give a file name (e.g. {path / 'out.mp4'}).")
    writable_folder(path.parent, option)
    return path


def writable_folder(path: Path, option: str = "-o/--output") -> Path:
    """A folder that exists (or can be made) and takes files (checked before paying)."""
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise InvalidInputError(f"{option}: {parent} is a file, not a folder. Nothing was sent.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{option}: cannot create {path} ({exc.strerror or exc}). Nothing was sent.") from None
    _probe(path, option)
    return path
