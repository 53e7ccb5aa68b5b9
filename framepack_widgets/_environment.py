"""The package's own environment variables, read in one place, each checked with a message
that names it (the client reads PIAPI_API_KEY / PIAPI_BASE_URL in `client/_settings.py`, the
run store FRAMEPACK_HOME in `runs/store.py`), and what the kernel's environment says about the
notebook it runs for."""

from __future__ import annotations

import math
import os
import sys

from .errors import InvalidInputError

__all__ = ["daily_budget", "notebook_path", "sim_time_scale", "umask"]


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


def daily_budget() -> float | None:
    """FRAMEPACK_BUDGET: US dollars a day the run store may spend (None when unset)."""
    text = os.environ.get("FRAMEPACK_BUDGET", "").strip()
    if not text:
        return None
    try:
        value = float(text.removeprefix("$"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(
            f"FRAMEPACK_BUDGET must be US dollars a day, 0 or more (e.g. 5.00 refuses any run that would take "
            f"today's spend past $5.00), not {text!r}. Fix or unset it."
        )
    return value


def notebook_path() -> str | None:
    """The notebook this kernel runs for, as its front end tells the kernel; None when none does.

    - VS Code puts the notebook's path in the kernel's `__vsc_ipynb_file__`;
    - jupyter_server (JupyterLab, Notebook 7) sets JPY_SESSION_NAME when it starts a kernel for a
      notebook: the notebook's path when the kernel started (a later rename is not seen);
    - marimo knows the notebook file of the running app.
    Only what is already imported is asked (IPython, marimo): this never imports either.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    found = getattr(shell, "user_ns", {}).get("__vsc_ipynb_file__") if shell is not None else None
    found = found or os.environ.get("JPY_SESSION_NAME") or _marimo_notebook()
    return os.path.normpath(str(found)) if found else None


def _marimo_notebook() -> str | None:
    if "marimo" not in sys.modules:
        return None
    try:
        from marimo._runtime.context import get_context  # marimo's notebook_dir() reads the same

        return get_context().filename or None
    except Exception:  # not inside a running marimo app, or another marimo
        return None


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
