"""Sweeps: "try these five prompts" as one call, priced and confirmed before anything is sent.

    plan = plan_sweep(base, prompt=["zoom in", "pan left"], duration=[10, 20], max_cost=2.0)
    plan.describe()                      # "4 runs (2 prompts × 2 durations), $1.80 in all"
    sweep = start_sweep(runner, plan, confirm=False)   # nothing starts: a pending Sweep
    sweep.confirm()                      # the widget's button (or confirm=True in code)
    runs = await sweep                   # every run final (completed, failed, ...)

Money rules (DESIGN.md): a plan is checked in full (every entry validated, the total
priced, a `max_cost` cap enforced) before any run exists; `confirm()` is idempotent, so a
double click never starts a sweep twice; at most `max_concurrent` tasks are in flight.

When the runner enforces a cap at least as strict as the sweep's (a real `Runner` does),
every run of the sweep is stored (QUEUED) the moment the sweep is confirmed, so a kernel
restart mid-sweep loses none of them (`Runner.resume()` finishes them). With a stricter
sweep cap than the runner's, the sweep feeds runs in as slots free up; runs not yet
started are then not in the store.

`sweep_command()` is the `framepack sweep` command line.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .inputs import FramepackInput
    from .runs import Run

__all__ = [
    "CostLimitError",
    "SweepPlan",
    "Sweep",
    "plan_sweep",
    "start_sweep",
    "reopen_sweep",
    "sweep_command",
    "MAX_SWEEP_RUNS",
]

log = logging.getLogger(__name__)

#: A sweep larger than this is refused unless `max_runs=` says otherwise (a typo guard).
MAX_SWEEP_RUNS = 100

_AXES = ("prompt", "negative_prompt", "duration", "end_image")
_AXIS_NAMES = {
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


@dataclass(frozen=True)
class SweepPlan:
    """The grid of a sweep: validated inputs in order, what varies, and what it costs.

    `inputs` are in `itertools.product` order over the varied fields (prompt, negative
    prompt, duration, end image), each repeated `repeats` times in a row.
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
            return f"{runs}{shape_text} × {_money(costs[0])} = {_money(self.total_cost_usd)}"
        low, high = (min(costs), max(costs)) if costs else (0.0, 0.0)
        return f"{runs}{shape_text}, {_money(low)}–{_money(high)} each, {_money(self.total_cost_usd)} in all"

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
        if max_cost is None:
            return
        try:
            cap = float(max_cost)
        except (TypeError, ValueError):
            raise InvalidInputError(f"max_cost must be a number of US dollars, not {max_cost!r}") from None
        if not cap >= 0:
            raise InvalidInputError(f"max_cost must be zero or more US dollars, not {max_cost!r}")
        if self.total_cost_usd > cap + 1e-9:
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


def plan_sweep(
    base_input: "FramepackInput",
    *,
    prompt: str | Sequence[str] | None = None,
    negative_prompt: str | Sequence[str] | None = None,
    duration: int | Sequence[int] | None = None,
    end_image: Any = None,
    repeats: int = 1,
    max_cost: float | None = None,
    max_runs: int = MAX_SWEEP_RUNS,
) -> SweepPlan:
    """Build and price the grid of runs; nothing is sent.

    Each of `prompt`, `negative_prompt`, `duration`, `end_image` is a list of values to try
    (or one value, or None to keep the base input's). The grid is their product, each
    entry repeated `repeats` times; every entry is validated through
    `base_input.replace(...)`. For `end_image`, a list may contain None (no end image).
    Raises InvalidInputError naming the bad entry, or CostLimitError over `max_cost`.
    """
    from .inputs import normalize_image

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats must be a whole number of 1 or more, not {repeats!r}")
    given = {
        "prompt": _values("prompt", prompt),
        "negative_prompt": _values("negative_prompt", negative_prompt),
        "duration": _values("duration", duration),
        "end_image": _values("end_image", end_image),
    }
    axes = {name: values for name, values in given.items() if values is not None}
    if "end_image" in axes:  # decode each end image once, not once per grid entry
        max_side = getattr(base_input, "max_side", 1280)
        axes["end_image"] = [
            None if v is None else normalize_image(v, max_side=max_side, what=f"end image {k + 1}")
            for k, v in enumerate(axes["end_image"])
        ]
    count = repeats
    for values in axes.values():
        count *= len(values)
    if count > max_runs:
        raise InvalidInputError(
            f"This sweep would start {count} runs, more than max_runs={max_runs}. Nothing was sent. "
            "Narrow the grid, or pass a larger max_runs if you mean it."
        )
    names = list(axes)
    inputs: list[FramepackInput] = []
    for combo in itertools.product(*(axes[n] for n in names)):
        changes = dict(zip(names, combo))
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
    if hasattr(value, "sha256") and hasattr(value, "request_value"):
        return f"<image {value.sha256[:8]}>"
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

    def __init__(self, runner: Any, plan: SweepPlan, *, max_concurrent: int | None = 3, sweep_id: str | None = None):
        if max_concurrent is not None and (isinstance(max_concurrent, bool) or int(max_concurrent) < 1):
            raise InvalidInputError("max_concurrent must be at least 1")
        self.runner = runner
        self.plan = plan
        self.sweep_id = sweep_id or f"sweep-{uuid.uuid4().hex[:12]}"
        self.max_concurrent = int(max_concurrent) if max_concurrent is not None else None
        self.state: SweepState = "pending"
        self.runs: list[Run] = []
        self.error: str | None = None
        self._observers: list[Callable[[Sweep], Any]] = []
        self._task: asyncio.Task[list[Run]] | None = None
        self._cancelled = False

    # ---------------------------------------------------------------- info
    @property
    def count(self) -> int:
        return self.plan.count

    @property
    def total_cost_usd(self) -> float:
        return self.plan.total_cost_usd

    @property
    def simulated(self) -> bool:
        return getattr(self.runner, "backend", "piapi") == "simulator"

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
            stage = str(getattr(getattr(run, "stage", None), "value", getattr(run, "stage", "?")))
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
            "run_ids": [getattr(r, "run_id", None) for r in self.runs],
            "progress": self.progress(),
            "error": self.error,
        }

    def observe(self, callback: Callable[["Sweep"], Any]) -> Callable[[], None]:
        """Call `callback(sweep)` when its state changes or a run starts. Returns an unobserve function."""
        self._observers.append(callback)

        def unobserve() -> None:
            if callback in self._observers:
                self._observers.remove(callback)

        return unobserve

    def _notify(self) -> None:
        for callback in list(self._observers):
            try:
                callback(self)
            except Exception:  # an observer's bug must not stop the sweep
                log.exception("sweep observer %r failed", callback)

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
        loop = asyncio.get_running_loop()  # before any state changes: fail cleanly outside a loop
        self._set_state("running")
        cap = self.max_concurrent
        runner_cap = getattr(self.runner, "max_concurrent", None)
        runner_enforces = isinstance(runner_cap, int) and (cap is None or runner_cap <= cap)
        try:
            if runner_enforces:
                # The runner keeps at most runner_cap in flight; store every run now (durable).
                for inp in self.plan.inputs:
                    self._start_one(inp)
                self._task = loop.create_task(self._watch(), name=f"framepack-{self.sweep_id}")
            else:
                self._task = loop.create_task(self._feed(cap or 1), name=f"framepack-{self.sweep_id}")
        except BaseException as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.cancel()
            raise
        return self

    def _start_one(self, inp: "FramepackInput") -> "Run":
        run = self.runner.start(inp, sweep_id=self.sweep_id)
        self.runs.append(run)
        self._follow_stages(run)
        self._notify()
        return run

    def _follow_stages(self, run: Any) -> None:
        """Notify observers when one of the sweep's runs changes stage (so progress stays live)."""
        if not callable(getattr(run, "observe", None)):
            return
        last = [getattr(run, "stage", None)]

        def changed(r: Any) -> None:
            stage = getattr(r, "stage", None)
            if stage != last[0]:
                last[0] = stage
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
            for w in waiters:
                if not w.done():
                    w.cancel()
        if self.state == "running":
            self._set_state("cancelled" if self.error else "done")
        return list(self.runs)

    def cancel(self) -> None:
        """Stop the sweep: runs not started are never sent; started ones are cancelled (see Runner.cancel)."""
        self._cancelled = True
        if self.state == "done":
            return
        for run in self.runs:
            if not run.done():
                try:
                    self.runner.cancel(run)
                except Exception:  # keep cancelling the others
                    log.exception("could not cancel run %s", getattr(run, "run_id", "?"))
        self._set_state("cancelled")

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


async def _wait_run(run: Any) -> None:
    """Await a run to its end; a run nobody drives any more counts as ended (it is in the store)."""
    try:
        await run
    except Exception as exc:  # RunNotAttachedError and the like: the run says what happened
        log.warning("stopped waiting for run %s: %s", getattr(run, "run_id", "?"), exc)


def start_sweep(
    runner: Any,
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


def reopen_sweep(runner: Any, sweep_id: str) -> Sweep:
    """The Sweep of runs stored under `sweep_id` (e.g. after a kernel restart), already confirmed.

    Call after `runner.resume()` so unfinished runs are live again; `await` it for the
    finished sweep (for the comparison grid). Nothing is sent by reopening.
    """
    runs = list(reversed(runner.list(limit=None, sweep_id=sweep_id)))  # oldest first = plan order
    if not runs:
        raise InvalidInputError(f"no runs are stored under sweep {sweep_id!r}")
    plan = SweepPlan(tuple(r.input for r in runs), {}, 1)
    sweep = Sweep(runner, plan, max_concurrent=None, sweep_id=sweep_id)
    sweep.runs = runs
    for run in runs:
        sweep._follow_stages(run)
    sweep.state = "running"
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        sweep._task = loop.create_task(sweep._watch(), name=f"framepack-{sweep_id}")
    elif all(r.done() for r in runs):
        sweep.state = "done"
    return sweep


# ------------------------------------------------------------------------- the CLI

from .cli import (  # noqa: E402  (one table of exit codes for every subcommand)
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SUBMISSION_UNKNOWN,
    EXIT_TASK_FAILED,
    EXIT_TIMEOUT,
)

_STAGE_EXIT = {
    "submission_unknown": EXIT_SUBMISSION_UNKNOWN,
    "failed": EXIT_TASK_FAILED,
    "cancelled": EXIT_TASK_FAILED,
    "timed_out": EXIT_TIMEOUT,
}
_EXIT_PRECEDENCE = [EXIT_SUBMISSION_UNKNOWN, EXIT_API_ERROR, EXIT_TIMEOUT, EXIT_TASK_FAILED]


def _build_parser() -> Any:
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="framepack sweep",
        description=(
            "Run every combination of the given prompts / durations / negative prompts on one image, "
            "after showing the plan and its cost. Uses the offline simulator when PIAPI_API_KEY is not set."
        ),
    )
    parser.add_argument("image", help="start image: a path or an http(s) URL")
    parser.add_argument("--prompt", action="append", required=True, help="a prompt to try (repeat for more)")
    parser.add_argument("--negative-prompt", action="append", default=None, help="a negative prompt to try (repeatable)")
    parser.add_argument("--duration", action="append", default=None, help="seconds of video, 10 to 30 (repeatable)")
    parser.add_argument("--end-image", default=None, help="optional end image (path or URL) for every run")
    parser.add_argument("--repeats", type=int, default=1, help="runs per combination (default 1)")
    parser.add_argument("--max-cost", type=float, default=None, help="refuse the sweep if it would cost more (USD)")
    parser.add_argument("--max-concurrent", type=int, default=3, help="tasks in flight at once (default 3)")
    parser.add_argument("-y", "--yes", action="store_true", help="start without asking (needed when not on a terminal)")
    parser.add_argument("-o", "--output", default=None, help="folder for the videos (default: ./sweep-<id>)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for a task after this many seconds")
    parser.add_argument(
        "--sim-time-scale",
        type=float,
        default=float(os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "8")),
        help="offline simulator only: how many times faster than real time tasks run (default 8)",
    )
    return parser


def _parse_durations(values: list[str] | None) -> list[Any] | None:
    if values is None:
        return None
    return [int(v) if str(v).strip().isdigit() else v for v in values]


def _video_name(index: int, inp: "FramepackInput", run: Any) -> str:
    import re

    words = re.sub(r"[^A-Za-z0-9]+", "-", inp.prompt.lower()).strip("-")[:40].strip("-") or "run"
    return f"{index:02d}-{words}-{inp.duration}s.mp4"


def sweep_command(argv: list[str] | None = None, *, stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
    """`framepack sweep IMAGE --prompt A --prompt B [...]`: plan, price, confirm, run, save videos.

    Exit codes as `framepack generate`: 0 every run completed, 2 bad input or over the
    cost cap (nothing sent), 3 API/network error, 4 a task failed, 5 timed out, 6 a
    create request's outcome is unknown, 130 interrupted.
    """
    import os
    import sys

    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)

    from .inputs import FramepackInput

    try:
        if args.max_concurrent < 1:
            raise InvalidInputError("--max-concurrent must be at least 1")
        durations = _parse_durations(args.duration)
        base = FramepackInput(
            args.prompt[0],
            args.image,
            end_image=args.end_image,
            negative_prompt=(args.negative_prompt or [""])[0],
            duration=(durations or [10])[0],
        )
        plan = plan_sweep(
            base,
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            duration=durations,
            repeats=args.repeats,
            max_cost=args.max_cost,
        )
    except InvalidInputError as exc:
        print(f"framepack: {exc}", file=err)
        return EXIT_BAD_INPUT

    use_api = bool(os.environ.get("PIAPI_API_KEY"))
    print(f"framepack: sweep plan: {plan.describe()}", file=err)
    for k, inp in enumerate(plan.inputs, 1):
        neg = f"  (not: {inp.negative_prompt!r})" if inp.negative_prompt else ""
        print(f"  {k:2d}. {inp.duration:2d} s  {inp.prompt!r}{neg}  {_money(inp.cost_usd)}", file=err)
    if use_api:
        print(f"framepack: this sends {plan.count} tasks to PiAPI and costs {_money(plan.total_cost_usd)}.", file=err)
    else:
        print(
            "framepack: no PIAPI_API_KEY set, using the offline simulator "
            "(the videos are synthetic, not FramePack's; nothing is charged)",
            file=err,
        )

    if not args.yes:
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            print(
                "framepack: not starting: stdin is not a terminal, so nobody can confirm. "
                "Add --yes to start the sweep without asking.",
                file=err,
            )
            return EXIT_BAD_INPUT
        err.write(f"Start {plan.count} run{'s' if plan.count != 1 else ''}? [y/N] ")
        err.flush()
        try:
            answer = stdin.readline().strip().lower()
        except KeyboardInterrupt:
            answer = ""
        if answer not in ("y", "yes"):
            print("framepack: not started; nothing was sent.", file=err)
            return EXIT_BAD_INPUT

    from pathlib import Path

    try:
        return asyncio.run(_run_sweep(plan, args, use_api=use_api, out=out, err=err, outdir=Path(args.output) if args.output else None))
    except KeyboardInterrupt:
        if use_api:
            note = ("runs already sent may still run (and be billed) at PiAPI; they are in the run "
                    "store: open the widget (or Runner.resume()) to finish them.")
        else:
            note = "the offline simulator stopped with it, so runs in progress there cannot finish."
        print(f"framepack: interrupted; {note}", file=err)
        return EXIT_INTERRUPTED


async def _cancel_unsent(runner: Any, sweep: Sweep, err: Any) -> None:
    """On interruption, runs never sent are cancelled (so nothing sends them, and bills, later)."""
    from .runs import RunStage

    unsent = [r for r in sweep.runs if r.stage is RunStage.QUEUED]
    for run in unsent:
        try:
            runner.cancel(run)
        except Exception:  # pragma: no cover - keep going; resume() shows what is left
            log.exception("could not cancel run %s", run.run_id)
    if unsent:
        await asyncio.wait([asyncio.ensure_future(r.wait()) for r in unsent], timeout=5)
    sent = [r for r in sweep.runs if not r.done()]
    print(
        f"framepack: interrupted: {len(unsent)} run(s) not yet sent were cancelled (nothing charged); "
        f"{len(sent)} already sent may still run and be billed.",
        file=err,
    )


async def _run_sweep(plan: SweepPlan, args: Any, *, use_api: bool, out: Any, err: Any, outdir: Any) -> int:
    import shutil
    from contextlib import AsyncExitStack, ExitStack
    from pathlib import Path

    from .client import AsyncClient
    from .runs import RunStage, Runner
    from .store import RunStore

    with ExitStack() as sync_stack:
        async with AsyncExitStack() as stack:
            if use_api:
                client = await stack.enter_async_context(AsyncClient())
            else:
                from .simulator import Simulator

                sim = sync_stack.enter_context(Simulator(time_scale=args.sim_time_scale))
                client = await stack.enter_async_context(AsyncClient(sim.api_key, base_url=sim.base_url))
            store = sync_stack.enter_context(RunStore())

            shown: dict[str, tuple[str, int]] = {}

            def on_change(run: Any) -> None:
                # One line per stage change (and per quarter of progress), not per poll.
                quarter = int((run.percent or 0) // 25) if not run.done() else 4
                key = (run.stage.value, quarter)
                if run.stage is RunStage.SUBMITTING or shown.get(run.run_id) == key:
                    return
                shown[run.run_id] = key
                pct = f" {run.percent:.0f}%" if run.percent is not None and not run.done() else ""
                print(f"  [{run.run_id[:8]}] {run.stage}{pct}  {run.prompt[:50]!r}", file=err)

            runner = Runner(client, store, on_change=on_change, max_concurrent=args.max_concurrent, timeout=args.timeout)
            try:
                print(f"framepack: starting the sweep (runs are stored in {store.folder})", file=err)
                sweep = start_sweep(runner, plan, confirm=True, max_concurrent=args.max_concurrent)
                try:
                    runs = await sweep
                except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us first
                    await _cancel_unsent(runner, sweep, err)
                    raise
            finally:
                await runner.aclose()

    folder = outdir or (Path.cwd() / sweep.sweep_id)
    folder.mkdir(parents=True, exist_ok=True)
    codes: list[int] = []
    for k, (inp, run) in enumerate(zip(plan.inputs, runs), 1):
        if run.stage is RunStage.COMPLETED and run.video_path is not None:
            target = folder / _video_name(k, inp, run)
            shutil.copyfile(run.video_path, target)
            print(str(target), file=out)
            continue
        detail = " ".join(x for x in (run.error, run.hint) if x)
        print(f"framepack: run {k} ({inp.prompt!r}) ended {run.stage}: {detail}", file=err)
        codes.append(_STAGE_EXIT.get(run.stage.value, EXIT_API_ERROR))
    # Several problems: report the one that matters most (money first).
    worst = min(codes, key=_EXIT_PRECEDENCE.index) if codes else EXIT_OK
    done = sum(1 for r in runs if r.stage is RunStage.COMPLETED)
    print(f"framepack: {done} of {len(runs)} runs completed; videos in {folder}", file=err)
    return worst
