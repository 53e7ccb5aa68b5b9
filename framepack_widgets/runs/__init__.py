"""Runs: one generation as a person sees it, kept on disk and driven to the end.

- `record`: `Run`, the record (one serialisation: `to_dict` / `from_dict`), and `RunStage`.
- `runner`: `Runner`, the live work: store first, then create, follow, download; cancel; resume.
- `store`: `RunStore`, runs and their files in one folder (SQLite), shared by kernels.
- `ownership`: which Runner drives a run, and when it counts as gone.
- `eta`: how long a run will take, learned from the store's finished runs.
"""

from __future__ import annotations

from .record import UNFINISHED_STAGES, Run, RunEvent, RunNotAttachedError, RunStage
from .runner import Runner
from .store import RunStore, StoreVersionError, default_folder

__all__ = [
    "Run",
    "RunEvent",
    "RunStage",
    "RunNotAttachedError",
    "Runner",
    "RunStore",
    "StoreVersionError",
    "UNFINISHED_STAGES",
    "default_folder",
]
