"""The offline PiAPI simulator: FramePack-shaped tasks and synthetic MP4s on 127.0.0.1.

    from framepack_widgets.simulator import Simulator, Fault
    with Simulator(time_scale=20, faults=[Fault.status(503, "create", retry_after=1)]) as sim:
        ...  # point a client at sim.base_url with sim.api_key

With `Simulator(state_dir=folder)` its tasks outlive the process, as a hosted service's do:
tasks, their input images and their videos are kept in `folder` (see `_state.py`), and any
later (or concurrent) Simulator over the same folder serves them by id. The folder grows
until `Simulator.prune_state(older_than=...)` is called.

By default it answers as PiAPI documents Framepack (`profile="realistic"`: no percent,
`output: null` until the video exists, empty logs); `profile="rich"` (or the environment
variable FRAMEPACK_SIM_PROFILE=rich) adds a percent and log lines. `replay=trace.json`
serves a trace written by `framepack record` (see `_replay.py`).

Videos it makes are synthetic (camera moves over the start image, cross-fading to the end
image): they are not FramePack's, and the UI must say so. Importing this package does not
import PIL, numpy or av; rendering does, in worker threads.
"""

from __future__ import annotations

from ._clock import (
    DEFAULT_PENDING_SECONDS,
    DEFAULT_PROCESSING_OVERHEAD,
    DEFAULT_PROCESSING_PER_VIDEO_SECOND,
    SimTask,
    default_processing_seconds,
)
from ._errors import SimulatorError, UnknownTaskError
from ._faults import ENDPOINTS, Fault
from ._http import RequestRecord
from ._replay import TRACE_FORMAT, TRACE_VERSION, Trace, TraceError, load_trace
from ._shapes import OUTPUT_SHAPES, PROFILE_ENV, PROFILES
from ._simulator import Simulator

__all__ = [
    "DEFAULT_PENDING_SECONDS",
    "DEFAULT_PROCESSING_OVERHEAD",
    "DEFAULT_PROCESSING_PER_VIDEO_SECOND",
    "ENDPOINTS",
    "Fault",
    "OUTPUT_SHAPES",
    "PROFILES",
    "PROFILE_ENV",
    "RequestRecord",
    "SimTask",
    "Simulator",
    "SimulatorError",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "Trace",
    "TraceError",
    "UnknownTaskError",
    "default_processing_seconds",
    "load_trace",
]
