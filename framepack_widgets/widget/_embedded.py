"""What the widget brings along: its frontend files and, without a key, an offline simulator.

One embedded simulator per kernel and store folder, shared by the widgets on that store and
stopped at exit. Its tasks live in <store>/simulator, so a run left processing when the
kernel died is finished by the next kernel's simulator, as PiAPI would have finished it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .._assets import BUILD_HINT, frontend_file

from .._environment import sim_time_scale

if TYPE_CHECKING:  # pragma: no cover
    from ..simulator import Simulator

__all__ = ["DEMO_TIME_SCALE", "asset", "shared_simulator"]

#: The embedded simulator's clock runs this much faster than its "realistic" default, so a
#: 10 s video is ready in about 15 s (30 s: about 40 s). FRAMEPACK_SIM_TIME_SCALE overrides.
DEMO_TIME_SCALE = 2.5

_simulators: dict[Path, "Simulator"] = {}
_simulator_lock = threading.Lock()


def asset(name: str) -> Path | str:
    """The built frontend file (framepack_widgets/static/), for anywidget's _esm and _css.

    A missing build is said in the cell, where the widget would be, instead of failing at import.
    """
    path = frontend_file(name)
    if path is not None:
        return path
    if name.endswith(".js"):
        import json

        text = f"framepack_widgets: its frontend (static/{name}) was not built; {BUILD_HINT}. Then restart the kernel."
        return "export default { render({ el }) { el.textContent = " + json.dumps(text) + "; } };"
    return ""


def shared_simulator(store_folder: "str | os.PathLike[str]") -> "Simulator":
    """The kernel's embedded offline simulator for a store folder (started on first use)."""
    state_dir = Path(store_folder).resolve() / "simulator"
    with _simulator_lock:
        sim = _simulators.get(state_dir)
        if sim is None:
            import atexit

            from ..simulator import Simulator

            scale = sim_time_scale(DEMO_TIME_SCALE)
            sim = _simulators[state_dir] = Simulator(time_scale=scale, state_dir=state_dir).start()
            atexit.register(sim.stop)
        return sim
