"""`framepack timeline`: several prompts, one video, priced and confirmed first.

Plan, price, confirm (or `--yes`), run the segments one after another through the run store
(each from the previous one's last frame), then copy the stitched MP4 to `-o`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path
from typing import IO

from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..runs import Run, Runner, RunStage, RunStore
from ..runs.store import StoreError
from ..timeline import Timeline, TimelinePlan, plan_timeline, start_timeline
from ._common import (
    add_backend_options,
    ask_to_start,
    backend,
    command_line_words,
    describe_backend,
    money,
    open_backend,
    positive,
    simulator_notice,
    stoppable,
    time_scale,
    writable_file,
    writable_folder,
)
from ._exit import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, exit_code_for_stage

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient

__all__ = ["timeline_command"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framepack timeline",
        description=(
            "One video from several prompts: each segment starts from the previous one's last frame, and the "
            "segments are stitched into one MP4. Shows the plan and its cost first. Uses the offline simulator "
            "when PIAPI_API_KEY is not set."
        ),
    )
    parser.add_argument("image", help="start image of the first segment: a path or an http(s) URL")
    parser.add_argument("--segment", action="append", required=True, metavar='"PROMPT:SECONDS"',
                        help='one segment, e.g. "the camera zooms in:10" (repeat, in order)')
    parser.add_argument("--negative-prompt", default="", help="what to avoid, for every segment")
    parser.add_argument("--end-image", default=None, help="optional image the last segment ends on (path or URL)")
    parser.add_argument("--max-cost", type=float, default=None, help="refuse the timeline if it would cost more (USD)")
    parser.add_argument("-y", "--yes", action="store_true", help="start without asking (needed when not on a terminal)")
    parser.add_argument("-o", "--output", default=None, help="the stitched MP4 (default: ./timeline-<id>.mp4)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for a task after this many seconds")
    add_backend_options(parser)
    return parser


def timeline_command(
    argv: list[str] | None = None, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """`framepack timeline IMAGE --segment "PROMPT:SECONDS" ... [-o OUT.mp4]`.

    Exit codes as `framepack generate`: 0 the stitched video is written, 2 bad input or over
    the cost cap (nothing sent), 3 API/network error, 4 a segment failed, 5 timed out, 6 a
    create request's outcome is unknown, 130 interrupted.
    """
    stdin, out, err = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:  # everything that can be checked is checked before anything is sent
        positive("--timeout", args.timeout)
        args.sim_time_scale = time_scale(args)
        plan = plan_timeline(args.image, args.segment, negative_prompt=args.negative_prompt,
                             end_image=args.end_image, max_cost=args.max_cost)
        if args.output:
            writable_file(Path(args.output))
        else:
            writable_folder(Path.cwd(), "the current folder")
        client, store = open_backend()
    except (InvalidInputError, StoreError) as exc:
        print(f"framepack: {exc}", file=err)
        return EXIT_BAD_INPUT
    with store:
        return _confirm_and_run(plan, args, client, store, stdin=stdin, out=out, err=err)


def _confirm_and_run(
    plan: TimelinePlan, args: argparse.Namespace, client: "AsyncClient | None", store: RunStore, *,
    stdin: IO[str], out: IO[str], err: IO[str],
) -> int:
    use_api = client is not None
    print(f"framepack: timeline plan: {plan.describe()}", file=err)
    for k, inp in enumerate(plan.inputs, 1):
        ends = "  (ends on the end image)" if inp.end_image is not None else ""
        print(f"  {k:2d}. {inp.duration:2d} s  {inp.prompt!r}{ends}  {money(inp.cost_usd)}", file=err)
    if use_api:
        print(f"framepack: this sends {plan.count} tasks to {describe_backend(client)}, one after another, and costs "
              f"{money(plan.total_cost_usd)}.", file=err)
    else:
        print(simulator_notice("the videos are"), file=err)
    if not ask_to_start(args.yes, f"Start the {plan.count}-segment timeline?", stdin=stdin, err=err):
        return EXIT_BAD_INPUT

    try:
        return asyncio.run(stoppable(_run(plan, args, client=client, store=store, out=out, err=err)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        note = ("the segment already sent may still run (and be billed) at PiAPI; it is in the run store."
                if use_api else "the offline simulator stopped with it.")
        print(f"framepack: interrupted; segments not yet sent were cancelled (nothing charged); {note}", file=err)
        return EXIT_INTERRUPTED


async def _run(
    plan: TimelinePlan, args: argparse.Namespace, *, client: "AsyncClient | None", store: RunStore, out: IO[str],
    err: IO[str],
) -> int:
    async with backend(client, args.sim_time_scale) as client:
        shown: dict[str, str] = {}

        def on_change(run: Run) -> None:  # one line per stage change, not per poll
            if run.segment is None or shown.get(run.run_id) == run.stage.value or run.stage is RunStage.SUBMITTING:
                return
            shown[run.run_id] = run.stage.value
            print(f"  segment {run.segment + 1}: {run.stage}  {run.prompt[:50]!r}", file=err)

        runner = Runner(client, store, on_change=on_change, timeout=args.timeout)
        try:
            print(f"framepack: starting the timeline (runs are stored in {store.folder})", file=err)
            timeline = start_timeline(runner, plan, confirm=True)
            try:
                await timeline
            except asyncio.CancelledError:  # Ctrl-C, SIGTERM or a closed terminal
                timeline.cancel(sent=False)
                raise
        finally:
            await runner.aclose()
    return _report(timeline, args, out=out, err=err)


def _report(timeline: Timeline, args: argparse.Namespace, *, out: IO[str], err: IO[str]) -> int:
    if timeline.status == "done" and timeline.video_path is not None:
        target = (Path(args.output) if args.output else Path.cwd() / f"{timeline.timeline_id}.mp4").resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(timeline.video_path, target)
        print(str(target), file=out)
        print(f"framepack: {timeline.count} segments, {timeline.total_seconds} s, stitched into {target}", file=err)
        return EXIT_OK
    print(f"framepack: the timeline stopped: {command_line_words(timeline.error) or timeline.status}", file=err)
    index = timeline.current
    if index is None:  # every segment completed; the stitching failed
        return exit_code_for_stage(RunStage.ERROR)
    run = timeline.runs[index]
    if run.hint:
        print(f"framepack: {command_line_words(run.hint)}", file=err)
    return exit_code_for_stage(run.stage)
