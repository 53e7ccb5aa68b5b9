"""Runs: one generation as a person sees it, kept on disk and driven to the end.

- `record`: `Run`, the record (one serialisation: `to_dict` / `from_dict`), its one link
  point (`Run.link`) and its one change channel (`Run.observe`); `stages`: `RunStage`,
  what a task status moves a run to, and `RunEvent` (one entry of its history).
- `runner`: `Runner`, which runs this process drives: start, hold/release timeline segments,
  cancel, resume, take over, consent; it links every run it hands out (`Runner._link`).
- `sending`: `Sender`, a Runner's drives: create (at most once), follow, download, cancel.
- `store`: `RunStore`, runs and their files in one folder (SQLite), shared by kernels;
  `schema`: its tables, migrations and row format; `folder`: the folder on disk (private,
  atomic writes, a damaged database moved aside).
- `live`: this process's drives; `ownership`: which Runner drives a run, and when it counts
  as gone; `saving`: writes the disk refused, retried; `outcomes`: hints for bad endings.
- `frames`: a run's last frame decoded; `present`: `Run.show()` and `Run.code()`.
- `eta`: how long a run will take, learned from the store's finished runs.
- `budget`: `Budget`, a day's spend in one store (what counts), refusing what would pass it.
"""

from __future__ import annotations

from .budget import Budget
from .record import UNFINISHED_STAGES, DrivenElsewhereError, Run, RunEvent, RunNotAttachedError, RunStage
from .runner import Runner
from .store import RunStore, StoreVersionError, default_folder

__all__ = [
    "Budget",
    "DrivenElsewhereError",
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
