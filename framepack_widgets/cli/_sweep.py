"""`framepack sweep`: several prompts or durations on one image, priced and confirmed first.

Plan, price, confirm (or `--yes`), run through the run store (so an interrupted sweep's
runs are kept), then copy each finished video into one folder and report every run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..inputs import FramepackInput
from ..runs import Run, Runner, RunStage, RunStore
from ..runs.store import StoreError
from ..sweeps import Sweep, SweepPlan, plan_sweep, start_sweep
from ._common import (
    add_backend_options,
    stoppable,
    ask_to_start,
    backend,
    command_line_words,
    describe_backend,
    money,
    open_backend,
    positive,
    simulator_notice,
    time_scale,
    writable_folder,
)
from ._exit import EXIT_API_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED, exit_code_for_stage, worst

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient

__all__ = ["sweep_command"]

log = logging.getLogger(__name__)


def _build_parser() -> argparse.ArgumentParser:
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
    add_backend_options(parser)
    return parser


def _parse_durations(values: list[str] | None) -> list[Any] | None:
    if values is None:
        return None
    return [int(v) if str(v).strip().isdigit() else v for v in values]


def _video_name(index: int, inp: FramepackInput) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "-", inp.prompt.lower()).strip("-")[:40].strip("-") or "run"
    return f"{index:02d}-{words}-{inp.duration}s.mp4"


def sweep_command(
    argv: list[str] | None = None, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """`framepack sweep IMAGE --prompt A --prompt B [...]`: plan, price, confirm, run, save videos.

    Exit codes as `framepack generate`: 0 every run completed, 2 bad input or over the
    cost cap (nothing sent), 3 API/network error, 4 a task failed, 5 timed out, 6 a
    create request's outcome is unknown, 130 interrupted.
    """
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)

    try:  # everything that can be checked is checked before anything is sent
        if args.max_concurrent < 1:
            raise InvalidInputError("--max-concurrent must be at least 1")
        positive("--timeout", args.timeout)
        args.sim_time_scale = time_scale(args)
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
        sweep_id = f"sweep-{uuid.uuid4().hex[:12]}"
        folder = writable_folder(Path(args.output) if args.output else Path.cwd() / sweep_id)
        client, store = open_backend()
    except (InvalidInputError, StoreError) as exc:
        print(f"framepack: {exc}", file=err)
        return EXIT_BAD_INPUT
    with store:
        return _confirm_and_run(plan, args, client, store, sweep_id, folder, stdin=stdin, out=out, err=err)


def _confirm_and_run(
    plan: SweepPlan, args: argparse.Namespace, client: "AsyncClient | None", store: RunStore, sweep_id: str,
    folder: Path, *, stdin: IO[str], out: IO[str], err: IO[str],
) -> int:
    use_api = client is not None
    print(f"framepack: sweep plan: {plan.describe()}", file=err)
    for k, inp in enumerate(plan.inputs, 1):
        neg = f"  (not: {inp.negative_prompt!r})" if inp.negative_prompt else ""
        print(f"  {k:2d}. {inp.duration:2d} s  {inp.prompt!r}{neg}  {money(inp.cost_usd)}", file=err)
    if use_api:
        print(f"framepack: this sends {plan.count} tasks to {describe_backend(client)} and costs "
              f"{money(plan.total_cost_usd)}.", file=err)
    else:
        print(simulator_notice("the videos are"), file=err)

    if not ask_to_start(args.yes, f"Start {plan.count} run{'s' if plan.count != 1 else ''}?", stdin=stdin, err=err):
        return EXIT_BAD_INPUT

    try:
        return asyncio.run(stoppable(_run_sweep(plan, args, client=client, store=store, sweep_id=sweep_id,
                                                 out=out, err=err, folder=folder)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if use_api:
            note = ("runs already sent may still run (and be billed) at PiAPI; they are in the run "
                    "store (FRAMEPACK_HOME): open the widget on it in a notebook to finish them.")
        else:
            note = "the offline simulator stopped with it, so runs in progress there cannot finish."
        print(f"framepack: interrupted; {note}", file=err)
        return EXIT_INTERRUPTED


async def _cancel_unsent(runner: Runner, sweep: Sweep, err: IO[str]) -> None:
    """On interruption, runs never sent are cancelled (so nothing sends them, and bills, later)."""
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


async def _run_sweep(
    plan: SweepPlan, args: argparse.Namespace, *, client: "AsyncClient | None", store: RunStore, sweep_id: str,
    out: IO[str], err: IO[str], folder: Path,
) -> int:
    async with backend(client, args.sim_time_scale) as client:
        shown: dict[str, tuple[str, int]] = {}

        def on_change(run: Run) -> None:
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
            sweep = start_sweep(runner, plan, confirm=True, max_concurrent=args.max_concurrent, sweep_id=sweep_id)
            try:
                runs = await sweep
            except asyncio.CancelledError:  # Ctrl-C, SIGTERM or a closed terminal
                await asyncio.shield(_cancel_unsent(runner, sweep, err))
                _report(plan, sweep.runs, folder, out, err)
                raise
        finally:
            await runner.aclose()
    return _report(plan, runs, folder, out, err)


def _report(plan: SweepPlan, runs: list[Run], folder: Path, out: IO[str], err: IO[str]) -> int:
    """Every run's outcome, one line each, and its video copied into `folder`; a copy that
    fails is said and points at the video in the run store instead."""
    codes: list[int] = []
    for k, (inp, run) in enumerate(zip(plan.inputs, runs), 1):
        if run.stage is RunStage.COMPLETED and run.video_path is not None:
            target = folder / _video_name(k, inp)
            try:
                shutil.copyfile(run.video_path, target)
            except OSError as exc:
                print(f"framepack: run {k} ({inp.prompt!r}) completed, but its video could not be copied to "
                      f"{target} ({exc.strerror or exc}); it is in the run store: {run.video_path}", file=err)
                codes.append(EXIT_API_ERROR)
                continue
            print(str(target), file=out)
            continue
        detail = command_line_words(" ".join(x for x in (run.error, run.hint) if x))
        task = f" (task {run.task_id})" if run.task_id else ""
        print(f"framepack: run {k} ({inp.prompt!r}) ended {run.stage}{task}: {detail}", file=err)
        codes.append(exit_code_for_stage(run.stage))
    for k in range(len(runs) + 1, plan.count + 1):
        print(f"framepack: run {k} ({plan.inputs[k - 1].prompt!r}) was never started; nothing was sent for it.",
              file=err)
    done = sum(1 for r in runs if r.stage is RunStage.COMPLETED)
    print(f"framepack: {done} of {plan.count} runs completed; videos in {folder}", file=err)
    return worst(codes)
