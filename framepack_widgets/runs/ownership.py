"""Who drives a run: owner ids, heartbeats and when an owner counts as gone.

Several kernels may open one run store. The Runner driving a run writes its owner id
(`host:pid:token`) into the store and refreshes a heartbeat; another Runner may take the
run over only when that owner is gone (its process is dead, or, on another machine, its
heartbeat is old). Taking over a never-sent run is further guarded by a compare-and-set
in the store, so a create request is sent at most once per run whatever happens.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "new_owner", "owner_is_stale", "pid_alive"]

HOST = socket.gethostname()
#: How often a Runner refreshes the store's "this run is being driven" mark.
HEARTBEAT_SECONDS = 30.0
#: A run driven from another machine counts as abandoned after this long without a heartbeat.
STALE_SECONDS = 300.0


def new_owner() -> str:
    """A fresh owner id for one Runner: `host:pid:token`."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_is_stale(owner: str | None, heartbeat_at: float | None, *, driven_here: bool) -> bool:
    """True when nobody alive drives the run, so another Runner may take it over.

    `driven_here`: whether a Runner of this process is driving it right now (an owner id
    of this very process is stale exactly when none is).
    """
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host == HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return not driven_here
        return not pid_alive(pid)
    return heartbeat_at is None or time.time() - heartbeat_at > STALE_SECONDS


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this machine is running (a zombie counts as dead)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill it on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed but unreaped child is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
