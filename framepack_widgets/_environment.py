"""The package's own environment variables, read in one place, each checked with a message
that names it (the client reads PIAPI_API_KEY / PIAPI_BASE_URL in `client/_settings.py`, the
run store FRAMEPACK_HOME in `runs/store.py`)."""

from __future__ import annotations

import math
import os

from .errors import InvalidInputError

__all__ = ["sim_time_scale", "umask"]


def sim_time_scale(default: float) -> float:
    """FRAMEPACK_SIM_TIME_SCALE (how many times faster than real time the offline simulator
    runs), else `default`."""
    text = os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(
            f"FRAMEPACK_SIM_TIME_SCALE must be a number above 0 (e.g. 8 runs the simulator 8 times faster "
            f"than real time), not {text!r}. Fix or unset it."
        )
    return value


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # elsewhere: swap and restore (briefly process-wide)
    os.umask(mask)
    return mask
