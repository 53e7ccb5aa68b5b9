"""FramePack image-to-video (PiAPI) in Jupyter: a widget, a client and an offline simulator.

Public names are imported lazily so that `import framepack_widgets` stays cheap:
PIL, numpy, av and anywidget load only when something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .constants import VERSION as __version__

_EXPORTS = {
    "FramepackWidget": "framepack_widgets.widget",
    "Client": "framepack_widgets.client",
    "AsyncClient": "framepack_widgets.client",
    "FramepackInput": "framepack_widgets.inputs",
    "Task": "framepack_widgets.task",
    "TaskStatus": "framepack_widgets.task",
    "Run": "framepack_widgets.runs",
    "RunStore": "framepack_widgets.runs",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .client import AsyncClient, Client
    from .inputs import FramepackInput
    from .runs import Run
    from .runs import RunStore
    from .task import Task, TaskStatus
    from .widget import FramepackWidget


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'framepack_widgets' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
