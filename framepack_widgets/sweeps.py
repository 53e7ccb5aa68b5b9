"""Sweeps: "try these five prompts" as one call, priced and confirmed before anything is sent.

    plan = plan_sweep(base, prompt=["zoom in", "pan left"], duration=[10, 20], max_cost=2.0)
    plan_sweep(base, start_image=["lake.jpg", "beach.jpg"])   # an image sweep: one run per image
    plan.describe()                      # "4 runs (2 prompts × 2 durations), $1.80 in all"
    sweep = start_sweep(runner, plan, confirm=False)   # nothing starts: a pending Sweep
    sweep.confirm()                      # the widget's button (or confirm=True in code)
    runs = await sweep                   # every run final (completed, failed, ...)

Money rules: a plan is checked in full (every entry validated, the total
priced, a `max_cost` cap enforced, and on confirming, the runner's day budget for the whole
sweep) before any run exists; `confirm()` is idempotent, so a
double click never starts a sweep twice; at most `max_concurrent` tasks are in flight.

Nothing lost: with a runner that enforces a cap (a real `Runner` does), every run of the
sweep is stored (QUEUED) the moment the sweep is confirmed, before the first is sent; a
sweep cap stricter than the runner's is a semaphore the sweep's runs share in the runner.
A kernel killed mid-sweep loses none of them: `Runner.resume()` follows the sent ones and
shows the others as queued, sent only when the person says so (`awaiting_consent`).
Only a runner without a cap of its own is fed runs as the sweep's slots free up.

The `framepack sweep` command line is `cli/_sweep.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._observers import Observers
from .errors import InvalidInputError
from .runs.budget import budget_of
from .runs.live import running_loop

if TYPE_CHECKING:  # pragma: no cover
    from .inputs import FramepackInput
    from .runs import Run, Runner

__all__ = [
    "CostLimitError",
    "cost_cap",
    "SweepPlan",
    "Sweep",
    "plan_sweep",
    "start_sweep",
    "reopen_sweep",
    "MAX_SWEEP_RUNS",
]

log = logging.getLogger(__name__)

#: A sweep larger than this is refused unless `max_runs=` says otherwise (a typo guard).
MAX_SWEEP_RUNS = 100

_AXES = ("start_image", "prompt", "negative_prompt", "duration", "end_image")
_AXIS_NAMES = {
    "start_image": ("start image", "start images"),
    "prompt": ("prompt", "prompts"),
    "negative_prompt": ("negative prompt", "negative prompts"),
    "duration": ("duration", "durations"),
    "end_image": ("end image", "end images"),
}


class CostLimitError(InvalidInputError):
    """The sweep would cost more than the `max_cost` cap, so nothing was sent.

    A subclass of InvalidInputError: like any refused input, nothing was charged.
    """

    def __init__(self, message: str, *, total_cost_usd: float, max_cost_usd: float) -> None:
        super().__init__(message)
        self.total_cost_usd = total_cost_usd
        self.max_cost_usd = max_cost_usd


def _money(value: float) -> str:
    return f"${value:,.2f}"


def cost_cap(max_cost: float | None) -> float | None:
    """A `max_cost` argument as US dollars (None: no cap), or InvalidInputError."""
    if max_cost is None:
        return None
    try:
        cap = float(max_cost)
    except (TypeError, ValueError):
        raise InvalidInputError(f"max_cost must be a number of US dollars, not {max_cost!r}") from None
    if not cap >= 0:
        raise InvalidInputError(f"max_cost must be zero or more US dollars, not {max_cost!r}")
    return cap


@dataclass(frozen=True)
class SweepPlan:
    """The grid of a sweep: validated inputs in order, what varies, and what it costs.

    `inputs` are in `itertools.product` order over the varied fields (start image, prompt,
    negative prompt, duration, end image), each repeated `repeats` times in a row.
    """

    inputs: tuple["FramepackInput", ...]
    axes: dict[str, int] = field(default_factory=dict)  # varied field -> number of values
    repeats: int = 1

    @property
    def count(self) -> int:
        return len(self.inputs)

    @property
    def costs_usd(self) -> list[float]:
        return [float(i.cost_usd) for i in self.inputs]

    @property
    def total_cost_usd(self) -> float:
        return round(sum(self.costs_usd), 2)

    def describe(self) -> str:
        """A human summary: "6 runs × $0.30 = $1.80", with the grid's shape when it has one."""
        n = self.count
        runs = f"{n} run{'s' if n != 1 else ''}"
        shape = [
            f"{k} {_AXIS_NAMES[name][1 if k != 1 else 0]}" for name, k in self.axes.items() if k > 1
        ]
        if self.repeats > 1:
            shape.append(f"{self.repeats} takes")
        shape_text = f" ({' × '.join(shape)})" if len(shape) > 1 else ""
        costs = self.costs_usd
        if costs and min(costs) == max(costs):
            text = f"{runs}{shape_text} × {_money(costs[0])} = {_money(self.total_cost_usd)}"
        else:
            low, high = (min(costs), max(costs)) if costs else (0.0, 0.0)
            text = f"{runs}{shape_text}, {_money(low)}–{_money(high)} each, {_money(self.total_cost_usd)} in all"
        return text + self._images_text()

    def _images_text(self) -> str:
        """" · start images: lake.jpg, beach.jpg" for an image sweep (the first few names)."""
        if self.axes.get("start_image", 0) < 2:
            return ""
        names = list(dict.fromkeys(i.start_image.name or f"<image {i.start_image.sha256[:8]}>" for i in self.inputs))
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return f" · start images: {', '.join(names[:5])}{more}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (no bytes), for the widget's confirmation panel."""
        return {
            "count": self.count,
            "total_cost_usd": self.total_cost_usd,
            "description": self.describe(),
            "axes": dict(self.axes),
            "repeats": self.repeats,
            "entries": [
                {
                    "start_image": i.start_image.sha256,
                    "start_image_name": i.start_image.name,
                    "prompt": i.prompt,
                    "negative_prompt": i.negative_prompt,
                    "duration": i.duration,
                    "end_image": None if i.end_image is None else i.end_image.sha256,
                    "cost_usd": i.cost_usd,
                }
                for i in self.inputs
            ],
        }

    def check_cost(self, max_cost: float | None) -> None:
        """Raise CostLimitError when the total exceeds `max_cost` (None: no cap)."""
        cap = cost_cap(max_cost)
        if cap is not None and self.total_cost_usd > cap + 1e-9:
            raise CostLimitError(
                f"This sweep would cost {_money(self.total_cost_usd)} ({self.describe()}), more than "
                f"the max_cost cap of {_money(cap)}. Nothing was sent. Use fewer prompts, durations or "
                "repeats, shorter durations, or raise max_cost.",
                total_cost_usd=self.total_cost_usd,
                max_cost_usd=cap,
            )


def _values(name: str, value: Any) -> list[Any] | None:
    """None: not varied. A list/tuple: the values. Anything else: one value."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        values = list(value)
        if not values:
            raise InvalidInputError(f"{name}=[] gives no runs: give at least one value (or leave it out)")
        return values
    return [value]


def _image_label(value: Any) -> str | None:
    """The file name of an image given by path or URL, to label its runs by."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if not text.startswith("data:"):
            return text.split("?", 1)[0].rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1][:120] or None
    return None


def plan_sweep(
    base_input: "FramepackInput",
    *,
    start_image: Any = None,
    prompt: str | Sequence[str] | None = None,
    negative_prompt: str | Sequence[str] | None = None,
    duration: int | Sequence[int] | None = None,
    end_image: Any = None,
    repeats: int = 1,
    max_cost: float | None = None,
    max_runs: int = MAX_SWEEP_RUNS,
    loop: bool = False,
) -> SweepPlan:
    """Build and price the grid of runs; nothing is sent.

    Each of `start_image`, `prompt`, `negative_prompt`, `duration`, `end_image` is a list of
    values to try (or one value, or None to keep the base input's). The grid is their
    product, each entry repeated `repeats` times; every entry is validated through
    `base_input.replace(...)`. Images are anything `FramepackInput` accepts, each
    normalised once before anything is planned (a path or URL names its runs: "lake.jpg").
    For `end_image`, a list may contain None (no end image). `loop`: every entry ends on
    its own start image (unless `end_image` is varied).
    Raises InvalidInputError naming the bad entry, or CostLimitError over `max_cost`.
    """
    from .inputs import normalize_image

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats must be a whole number of 1 or more, not {repeats!r}")
    given = {
        "start_image": _values("start_image", start_image),
        "prompt": _values("prompt", prompt),
        "negative_prompt": _values("negative_prompt", negative_prompt),
        "duration": _values("duration", duration),
        "end_image": _values("end_image", end_image),
    }
    axes = {name: values for name, values in given.items() if values is not None}
    count = repeats
    for values in axes.values():
        count *= len(values)
    if count > max_runs:
        raise InvalidInputError(
            f"This sweep would start {count} runs, more than max_runs={max_runs}. Nothing was sent. "
            "Narrow the grid, or pass a larger max_runs if you mean it."
        )
    max_side = base_input.max_side
    for name in ("start_image", "end_image"):  # decode each image once, not once per grid entry
        if name in axes:
            what = _AXIS_NAMES[name][0]
            axes[name] = [
                None if v is None and name == "end_image" else
                normalize_image(v, max_side=max_side, what=f"{what} {k + 1}").named(_image_label(v))
                for k, v in enumerate(axes[name])
            ]
    names = list(axes)
    inputs: list[FramepackInput] = []
    for combo in itertools.product(*(axes[n] for n in names)):
        changes = dict(zip(names, combo))
        if loop and "end_image" not in changes:
            changes["end_image"] = changes.get("start_image", base_input.start_image)
        try:
            entry = base_input.replace(**changes) if changes else base_input
        except InvalidInputError as exc:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in changes.items())
            raise InvalidInputError(f"Sweep entry {len(inputs) // repeats + 1} ({shown}): {exc}") from exc
        inputs.extend([entry] * repeats)
    plan = SweepPlan(tuple(inputs), {n: len(axes[n]) for n in names}, repeats)
    plan.check_cost(max_cost)
    return plan


def _short(value: Any) -> str:
    if value is None:
        return "None"
    from .inputs import ImageSource

    if isinstance(value, ImageSource):
        return value.name or f"<image {value.sha256[:8]}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…'"


# ------------------------------------------------------------------------------- Sweep

SweepState = Literal["pending", "running", "done", "cancelled"]


class Sweep:
    """One sweep: pending until confirmed, then its runs stream through the runner.

    `runs`: the runs started so far, in plan order. `await sweep` returns them all once
    every one is final (completed, failed, cancelled, ...: no exception for a failed run).
    `confirm()` starts it (idempotent); `cancel()` stops what has not finished.
    """

    def __init__(self, runner: "Runner", plan: SweepPlan, *, max_concurrent: int | None = 3, sweep_id: str | None = None,
                 runs: Sequence["Run"] = ()):
        if max_concurrent is not None and (isinstance(max_concurrent, bool) or int(max_concurrent) < 1):
            raise InvalidInputError("max_concurrent must be at least 1")
        self.runner = runner
        self.plan = plan
        self.sweep_id = sweep_id or f"sweep-{uuid.uuid4().hex[:12]}"
        self.max_concurrent = int(max_concurrent) if max_concurrent is not None else None
        self.state: SweepState = "pending"
        self.runs: list[Run] = []
        self.error: str | None = None
        self._observers: Observers[Sweep] = Observers()
        self._task: asyncio.Task[list[Run]] | None = None
        self._cancelled = False
        self._hold = None  # the day's budget kept aside for runs not stored yet
        if runs:
            self._carry_on(list(runs))

    def _carry_on(self, runs: list["Run"]) -> None:
        """A sweep already confirmed (its runs stored): follow them, and watch for the end
        when a loop runs."""
        self.runs = runs
        for run in runs:
            self._follow_stages(run)
        self.state = "running"
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._task = loop.create_task(self._watch(), name=f"framepack-{self.sweep_id}")
        elif all(r.done() for r in runs):
            self.state = "done"

    # ---------------------------------------------------------------- info
    @property
    def count(self) -> int:
        return self.plan.count

    @property
    def total_cost_usd(self) -> float:
        return self.plan.total_cost_usd

    @property
    def simulated(self) -> bool:
        return self.runner.backend == "simulator"

    def describe(self) -> str:
        text = self.plan.describe()
        if self.simulated:
            text += " (offline simulator: nothing is charged)"
        return text

    @property
    def confirmed(self) -> bool:
        return self.state != "pending"

    def done(self) -> bool:
        return self.state in ("done", "cancelled") and (self._task is None or self._task.done())

    def progress(self) -> dict[str, int]:
        """How many runs are at each stage ("not started" for those the sweep has not started yet)."""
        counts: dict[str, int] = {}
        for run in self.runs:
            stage = run.stage.value
            counts[stage] = counts.get(stage, 0) + 1
        waiting = self.count - len(self.runs)
        if waiting and self.state != "cancelled":
            counts["not started"] = waiting
        return counts

    def summary(self) -> dict[str, Any]:
        """Small JSON-safe dict for the widget's trait."""
        return {
            "sweep_id": self.sweep_id,
            "state": self.state,
            "count": self.count,
            "total_cost_usd": self.total_cost_usd,
            "description": self.describe(),
            "simulated": self.simulated,
            "run_ids": [r.run_id for r in self.runs],
            "progress": self.progress(),
            "error": self.error,
        }

    def observe(self, callback: Callable[["Sweep"], Any]) -> Callable[[], None]:
        """Call `callback(sweep)` when its state changes or a run starts. Returns an unobserve function."""
        return self._observers.add(callback)

    def _notify(self) -> None:
        self._observers.notify(self)

    def _set_state(self, state: SweepState) -> None:
        if self.state != state:
            self.state = state
            self._notify()

    def __repr__(self) -> str:
        return f"<Sweep {self.sweep_id} {self.state}: {self.describe()}>"

    # ---------------------------------------------------------------- control
    def confirm(self) -> "Sweep":
        """Start the sweep (needs the running asyncio loop). A second call does nothing."""
        if self.state == "cancelled":
            raise InvalidInputError("This sweep was cancelled before it started; plan it again to run it.")
        if self.state != "pending":
            return self
        loop = running_loop("Sweep.confirm()")  # before any state changes: fail cleanly outside a loop
        budget = budget_of(self.runner)  # the whole sweep within today's budget, or nothing starts
        if budget is not None:
            self._hold = budget.hold(self.total_cost_usd, what=f"this sweep ({self.count} runs)")
        self._set_state("running")
        cap = self.max_concurrent
        runner_cap = self.runner.max_concurrent
        try:
            if isinstance(runner_cap, int):
                # Every run stored now, before any is sent (nothing lost); the runner keeps at
                # most runner_cap in flight, and at most `cap` of these when that is stricter.
                slots = asyncio.Semaphore(cap) if cap is not None and cap < runner_cap else None
                for inp in self.plan.inputs:
                    self._start_one(inp, slots)
                self._release_hold()
                self._task = loop.create_task(self._watch(), name=f"framepack-{self.sweep_id}")
            else:
                self._task = loop.create_task(self._feed(cap or 1), name=f"framepack-{self.sweep_id}")
        except BaseException as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.cancel()
            raise
        return self

    def _start_one(self, inp: "FramepackInput", slots: asyncio.Semaphore | None = None) -> "Run":
        if self._hold is not None:
            self._hold.draw(inp.cost_usd)  # stored next: the store counts it from now on
        run = self.runner.start(inp, sweep_id=self.sweep_id, **({"slots": slots} if slots is not None else {}))
        self.runs.append(run)
        self._follow_stages(run)
        self._notify()
        return run

    def _follow_stages(self, run: "Run") -> None:
        """Notify observers when one of the sweep's runs changes stage (so progress stays live)."""
        last = [run.stage]

        def changed(r: "Run") -> None:
            if r.stage != last[0]:
                last[0] = r.stage
                self._notify()

        run.observe(changed)

    async def _watch(self) -> list["Run"]:
        for run in list(self.runs):
            await _wait_run(run)
        if self.state == "running":
            self._set_state("done")
        return list(self.runs)

    async def _feed(self, cap: int) -> list["Run"]:
        slots = asyncio.Semaphore(cap)
        waiters: list[asyncio.Task[None]] = []

        async def follow(run: "Run") -> None:
            try:
                await _wait_run(run)
            finally:
                slots.release()

        try:
            for inp in self.plan.inputs:
                await slots.acquire()
                if self._cancelled:
                    slots.release()
                    break
                try:
                    run = self._start_one(inp)
                except Exception as exc:
                    slots.release()
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("sweep %s could not start a run", self.sweep_id)
                    break
                waiters.append(asyncio.ensure_future(follow(run)))
            if waiters:
                await asyncio.gather(*waiters, return_exceptions=True)
        finally:
            self._release_hold()
            for w in waiters:
                if not w.done():
                    w.cancel()
        if self.state == "running":
            self._set_state("cancelled" if self.error else "done")
        return list(self.runs)

    def cancel(self) -> None:
        """Stop the sweep: runs not started are never sent; started ones are cancelled (see Runner.cancel)."""
        self._cancelled = True
        self._release_hold()
        if self.state == "done":
            return
        for run in self.runs:
            if not run.done():
                try:
                    self.runner.cancel(run)
                except Exception:  # keep cancelling the others
                    log.exception("could not cancel run %s", run.run_id)
        self._set_state("cancelled")

    def _release_hold(self) -> None:
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    # ---------------------------------------------------------------- awaiting
    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()

    async def wait(self) -> list["Run"]:
        """Every run of the sweep once all are final (same as `await sweep`)."""
        if self.state == "pending":
            raise InvalidInputError(
                "This sweep has not been confirmed, so nothing is running: call sweep.confirm() "
                "(or press its Start button in the widget) first."
            )
        if self._task is not None:
            await asyncio.shield(self._task)
        for run in list(self.runs):  # cancelled sweeps: wait for the cancellations to land
            await _wait_run(run)
        return list(self.runs)


async def _wait_run(run: "Run") -> None:
    """Await a run to its end; a run nobody drives any more counts as ended (it is in the store)."""
    try:
        await run
    except Exception as exc:  # RunNotAttachedError and the like: the run says what happened
        log.warning("stopped waiting for run %s: %s", run.run_id, exc)


def start_sweep(
    runner: "Runner",
    plan: SweepPlan,
    *,
    confirm: bool = False,
    max_concurrent: int | None = 3,
    max_cost: float | None = None,
    sweep_id: str | None = None,
) -> Sweep:
    """A Sweep for `plan` on `runner`; started only when `confirm=True` (else call `.confirm()`).

    `max_cost` is checked again here, before anything else happens. `max_concurrent`
    caps the sweep's tasks in flight (the runner's own cap applies too; None: the
    runner's cap alone).
    """
    plan.check_cost(max_cost)
    sweep = Sweep(runner, plan, max_concurrent=max_concurrent, sweep_id=sweep_id)
    if confirm:
        sweep.confirm()
    return sweep


def reopen_sweep(runner: "Runner", sweep_id: str) -> Sweep:
    """The Sweep of runs stored under `sweep_id` (e.g. after a kernel restart), already confirmed.

    Call after `runner.resume()` so unfinished runs are live again; `await` it for the
    finished sweep (for the comparison grid). Nothing is sent by reopening.
    """
    runs = list(reversed(runner.list(limit=None, sweep_id=sweep_id)))  # oldest first = plan order
    if not runs:
        raise InvalidInputError(f"no runs are stored under sweep {sweep_id!r}")
    plan = SweepPlan(tuple(r.input for r in runs), {}, 1)
    return Sweep(runner, plan, max_concurrent=None, sweep_id=sweep_id, runs=runs)
