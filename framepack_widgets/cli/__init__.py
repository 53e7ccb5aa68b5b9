"""The `framepack` command: generate a video, sweep prompts, a timeline, or run the simulator.

- `_generate`: `framepack generate`, one image and a prompt to one MP4.
- `_sweep`: `framepack sweep`, several prompts or durations, priced and confirmed first.
- `_timeline`: `framepack timeline`, several prompts as one video, priced and confirmed first.
- `_record`: `framepack record`, one run written as a trace for bug reports.
- `_service`: `framepack service`, the classroom service JupyterHub runs.
- `_exit`: the exit codes every command shares.
"""

from __future__ import annotations

import argparse
import sys

from ._exit import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SUBMISSION_UNKNOWN,
    EXIT_TASK_FAILED,
    EXIT_TIMEOUT,
    exit_code_for,
)

__all__ = [
    "main",
    "exit_code_for",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_API_ERROR",
    "EXIT_TASK_FAILED",
    "EXIT_TIMEOUT",
    "EXIT_SUBMISSION_UNKNOWN",
    "EXIT_INTERRUPTED",
]


def _build_parser() -> argparse.ArgumentParser:
    from ._generate import add_generate_parser

    parser = argparse.ArgumentParser(
        prog="framepack",
        description="FramePack image-to-video through PiAPI (or the offline simulator when no key is set).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate_parser(sub)
    sub.add_parser(
        "sweep",
        help="several prompts/durations on one image, with the total cost shown first (framepack sweep --help)",
        add_help=False,
    )
    sub.add_parser(
        "timeline",
        help='several prompts as one video, each from the last frame (framepack timeline --help)',
        add_help=False,
    )
    sub.add_parser(
        "record",
        help="one run, its whole exchange with PiAPI written as a trace for bug reports (framepack record --help)",
        add_help=False,
    )
    sub.add_parser(
        "service",
        help="the classroom service for JupyterHub: the class's key, budgets and videos (framepack service --help)",
        add_help=False,
    )
    sub.add_parser(
        "simulator",
        help="run the offline PiAPI simulator in the foreground (framepack simulator --help)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "sweep":  # its own parser: repeatable --prompt/--duration, cost cap
        from ._sweep import sweep_command

        return sweep_command(argv[1:])
    if argv and argv[0] == "timeline":  # its own parser: repeatable --segment "PROMPT:SECONDS"
        from ._timeline import timeline_command

        return timeline_command(argv[1:])
    if argv and argv[0] == "record":  # its own parser: the trace and video paths
        from ._record import record_command

        return record_command(argv[1:])
    if argv and argv[0] == "service":  # its own parser: --port, --budget, --db, ...
        from ._service import service_command

        return service_command(argv[1:])
    if argv and argv[0] == "simulator":  # its own parser: --port, --time-scale, --state-dir, ...
        from ..simulator.__main__ import main as simulator_main

        return simulator_main(argv[1:])
    from ._generate import generate_command

    return generate_command(_build_parser().parse_args(argv))
