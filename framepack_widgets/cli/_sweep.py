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
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError
from ..inputs import FramepackInput
from ..runs import Run, Runner, RunStage
from ..sweeps import Sweep, SweepPlan, plan_sweep, start_sweep
from ._common import add_backend_options, ask_to_start, backend, money, simulator_notice, uses_api
from ._exit import EXIT_BAD_INPUT, EXIT_INTERRUPTED, exit_code_for_stage, worst

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

    use_api = uses_api()
    print(f"framepack: sweep plan: {plan.describe()}", file=err)
    for k, inp in enumerate(plan.inputs, 1):
        neg = f"  (not: {inp.negative_prompt!r})" if inp.negative_prompt else ""
        print(f"  {k:2d}. {inp.duration:2d} s  {inp.prompt!r}{neg}  {money(inp.cost_usd)}", file=err)
    if use_api:
        print(f"framepack: this sends {plan.count} tasks to PiAPI and costs {money(plan.total_cost_usd)}.", file=err)
    else:
        print(simulator_notice("the videos are"), file=err)

    if not ask_to_start(args.yes, f"Start {plan.count} run{'s' if plan.count != 1 else ''}?", stdin=stdin, err=err):
        return EXIT_BAD_INPUT

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
    plan: SweepPlan, args: argparse.Namespace, *, use_api: bool, out: IO[str], err: IO[str], outdir: Path | None
) -> int:
    async with backend(use_api, args.sim_time_scale) as (client, store):
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
            target = folder / _video_name(k, inp)
            shutil.copyfile(run.video_path, target)
            print(str(target), file=out)
            continue
        detail = " ".join(x for x in (run.error, run.hint) if x)
        print(f"framepack: run {k} ({inp.prompt!r}) ended {run.stage}: {detail}", file=err)
        codes.append(exit_code_for_stage(run.stage))
    done = sum(1 for r in runs if r.stage is RunStage.COMPLETED)
    print(f"framepack: {done} of {len(runs)} runs completed; videos in {folder}", file=err)
    return worst(codes)
