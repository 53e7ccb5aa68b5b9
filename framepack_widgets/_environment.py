"""The package's own environment variables, read in one place, each checked with a message
that names it (the client reads PIAPI_API_KEY / PIAPI_BASE_URL in `client/_settings.py`, the
run store FRAMEPACK_HOME in `runs/store.py`), what the kernel's environment says about the
notebook it runs for, and what a JupyterHub gives a student's server for the classroom service
(FRAMEPACK_SERVICE_URL, JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL)."""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InvalidInputError

__all__ = ["ClassService", "class_service", "daily_budget", "is_hub_address", "notebook_path", "sim_time_scale",
           "umask"]


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


@dataclass(frozen=True)
class ClassService:
    """The classroom service a student's server is configured for: its address (no trailing
    slash) and the hub token that is the student's credential there."""

    url: str
    token: str


def _set(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def class_service(environ: Mapping[str, str] | None = None) -> ClassService | None:
    """FRAMEPACK_SERVICE_URL (set by the teacher through `c.Spawner.environment`) with the
    server's JUPYTERHUB_API_TOKEN; None when either is missing. A URL that is not http(s) is
    refused here, naming the variable."""
    environ = os.environ if environ is None else environ
    url = _set(environ, "FRAMEPACK_SERVICE_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"FRAMEPACK_SERVICE_URL must be the class service's http(s) address, e.g. "
            f"http://127.0.0.1:8000/services/framepack, not {url!r}. Ask your teacher to fix the hub's "
            "c.Spawner.environment. Nothing was sent."
        )
    token = _set(environ, "JUPYTERHUB_API_TOKEN")
    if token is None:
        return None
    return ClassService(url.rstrip("/"), token)


#: Names only a cluster's own DNS answers (Kubernetes services: `proxy-public`, `hub.jhub.svc`).
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


def is_hub_address(url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `url` is the hub's own internal address, where a student's hub token already
    travels (the hub talks to the student's server over plain http there): this machine, the
    host of JUPYTERHUB_API_URL, or a name only the cluster resolves (a Kubernetes service
    name without dots, or one under `.svc`)."""
    environ = os.environ if environ is None else environ
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return True
    api = _set(environ, "JUPYTERHUB_API_URL")
    if api and (urlsplit(api).hostname or "").lower() == host:
        return True
    return address is None and ("." not in host or host.endswith(_CLUSTER_SUFFIXES))
