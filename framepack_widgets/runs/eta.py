"""An honest ETA: how long a run will take, learned from this store's own finished runs.

The estimate is the *median* wall time per second of video over finished runs on the
same backend (a median, so one stuck task does not skew it), and only once there are at
least `MIN_SAMPLES` of them. When at least that many finished runs have exactly the
requested duration, their median wall time is used directly (fixed overheads included).
Otherwise the estimate falls back to a documented default and says so (`basis="default"`):

- a clock the caller knows (`default=`): the embedded simulator passes its own
  (`Simulator.expected_seconds`);
- otherwise ``PIAPI_SECONDS_PER_VIDEO_SECOND`` = 12 s of wall time per second of video
  (a 10 s clip about 2 minutes, a 30 s clip about 6). **This is a guess**: PiAPI does not
  publish Framepack's queue or processing times and nobody here could measure them. It
  is replaced by real figures after three finished runs.

Pure standard library; cheap to import.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:  # pragma: no cover
    from .record import Run

__all__ = [
    "Estimate",
    "estimate_wall_time",
    "progress_estimate",
    "history_from_runs",
    "describe_remaining",
    "MIN_SAMPLES",
    "PIAPI_SECONDS_PER_VIDEO_SECOND",
    "DEFAULT_PROGRESS_CAP",
]

MIN_SAMPLES = 3
PIAPI_SECONDS_PER_VIDEO_SECOND = 12.0  # a documented guess; see the module docstring
DEFAULT_PROGRESS_CAP = 95.0

Basis = Literal["history", "default"]
Default = Union[float, Callable[[int], float], None]


@dataclass(frozen=True)
class Estimate:
    """Expected wall time of one run, and where the figure comes from.

    `seconds`: the estimate; `basis`: "history" (learned from `n` finished runs) or
    "default" (a documented default; `n` finished runs were too few); `low`/`high`: the
    25th and 75th percentiles when learned from history (else equal to `seconds`).
    """

    seconds: float
    basis: Basis
    n: int
    backend: str = "piapi"
    low: float | None = None
    high: float | None = None
    from_clock: bool = False  # the default came from a known clock (the simulator's), not a guess

    def describe(self) -> str:
        """"about 2 min (from 5 earlier runs)" / "about 2 min (a guess: no finished runs yet)"."""
        text = f"about {_human(self.seconds)}"
        if self.basis == "history":
            return f"{text} (from {self.n} earlier run{'s' if self.n != 1 else ''})"
        if self.from_clock:
            return f"{text} (the simulator's clock)" if self.backend == "simulator" else text
        if self.n:
            return f"{text} (a guess: only {self.n} finished run{'s' if self.n != 1 else ''} to learn from)"
        return f"{text} (a guess: no finished runs yet)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for the widget's traits."""
        return {
            "seconds": round(self.seconds, 1),
            "basis": self.basis,
            "n": self.n,
            "backend": self.backend,
            "low": None if self.low is None else round(self.low, 1),
            "high": None if self.high is None else round(self.high, 1),
            "text": self.describe(),
        }


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _clean(sample: Any) -> tuple[float, float, str] | None:
    try:
        duration, wall, backend = sample
        duration, wall = float(duration), float(wall)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(duration) and math.isfinite(wall)) or duration <= 0 or wall <= 0:
        return None
    return duration, wall, str(backend or "piapi")


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def default_seconds(duration: int, default: Default = None) -> float:
    """The fallback estimate: `default` (seconds per video second, or a callable), else the guess."""
    if callable(default):
        return float(default(duration))
    if default is not None:
        return float(default) * duration
    return PIAPI_SECONDS_PER_VIDEO_SECOND * duration


def estimate_wall_time(
    duration: int,
    history: Iterable[tuple[float, float, str]],
    *,
    backend: str = "piapi",
    default: Default = None,
    min_samples: int = MIN_SAMPLES,
) -> Estimate:
    """How long a run of `duration` seconds of video will take, from `history`.

    `history`: ``(duration, wall_time_seconds, backend)`` of finished runs (see
    `history_from_runs`); samples from other backends and nonsense values (zero,
    negative, NaN) are ignored. `default`: overrides the fallback (a float is seconds of
    wall per second of video; a callable maps duration to seconds), e.g.
    `sim.expected_seconds` for the simulator's own clock.
    """
    backend = str(backend or "piapi")
    samples = [s for s in (_clean(x) for x in history) if s is not None and s[2] == backend]
    n = len(samples)
    if n >= min_samples:
        same = [wall for d, wall, _ in samples if d == duration]
        if len(same) >= min_samples:
            low, high = _quartiles(same)
            return Estimate(statistics.median(same), "history", len(same), backend, low, high)
        ratios = [wall / d for d, wall, _ in samples]
        low, high = _quartiles(ratios)
        return Estimate(statistics.median(ratios) * duration, "history", n, backend, low * duration, high * duration)
    seconds = default_seconds(duration, default)
    return Estimate(seconds, "default", n, backend, seconds, seconds, from_clock=default is not None)


def progress_estimate(
    elapsed: float, estimate: Estimate | float, *, done: bool = False, cap: float = DEFAULT_PROGRESS_CAP
) -> float:
    """Percent complete by the clock alone: linear in `elapsed`, held at `cap` (95) until done.

    Never claims 100 before the task says so; 100.0 once `done`.
    """
    if done:
        return 100.0
    seconds = estimate.seconds if isinstance(estimate, Estimate) else float(estimate)
    if not math.isfinite(elapsed) or elapsed <= 0:
        return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return cap
    return round(min(cap, 100.0 * elapsed / seconds), 1)


def describe_remaining(elapsed: float, estimate: Estimate) -> str:
    """"about 40 s left (estimate)", or "taking longer than usual" once past the estimate."""
    left = estimate.seconds - max(0.0, elapsed)
    if left <= 0:
        return "taking longer than estimated"
    return f"about {_human(left)} left (estimate)"


def history_from_runs(runs: Iterable["Run"]) -> list[tuple[float, float, str]]:
    """``(duration, wall_time, backend)`` of the completed runs among `runs` (the samples that
    `RunStore.eta_samples` reads straight from the store)."""
    out: list[tuple[float, float, str]] = []
    for run in runs:
        if run.stage.value == "completed":
            sample = _clean((run.duration, run.wall_time, run.backend))
            if sample is not None:
                out.append(sample)
    return out
