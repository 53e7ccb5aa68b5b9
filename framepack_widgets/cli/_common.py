"""What every `framepack` command shares: the options and words about the backend.

Without PIAPI_API_KEY a command runs on the offline simulator, and says so.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient
    from ..runs import RunStore

__all__ = ["add_backend_options", "ask_to_start", "backend", "money", "simulator_notice", "uses_api"]


def uses_api() -> bool:
    """True when a key is set, so tasks go to PiAPI (and cost money)."""
    return bool(os.environ.get("PIAPI_API_KEY"))


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sim-time-scale",
        type=float,
        default=float(os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "8")),
        help="offline simulator only: how many times faster than real time tasks run (default 8)",
    )


def simulator_notice(what: str) -> str:
    """The line that says the simulator is in use; `what`: "the video is" / "the videos are"."""
    return (
        "framepack: no PIAPI_API_KEY set, using the offline simulator "
        f"({what} synthetic, not FramePack's; nothing is charged)"
    )


def money(value: float) -> str:
    return f"${value:,.2f}"


def ask_to_start(yes: bool, question: str, *, stdin: IO[str], err: IO[str]) -> bool:
    """True when the person confirmed (or `--yes` was given). Off a terminal without `--yes`
    nobody can confirm, so nothing starts; the reason is printed."""
    if yes:
        return True
    if not stdin.isatty():
        print(
            "framepack: not starting: stdin is not a terminal, so nobody can confirm. "
            "Add --yes to start without asking.",
            file=err,
        )
        return False
    err.write(f"{question} [y/N] ")
    err.flush()
    try:
        answer = stdin.readline().strip().lower()
    except KeyboardInterrupt:
        answer = ""
    if answer not in ("y", "yes"):
        print("framepack: not started; nothing was sent.", file=err)
        return False
    return True


@asynccontextmanager
async def backend(use_api: bool, sim_time_scale: float) -> AsyncIterator[tuple["AsyncClient", "RunStore"]]:
    """The client (PiAPI with the key; else an offline simulator started here, stopped after)
    and the run store (FRAMEPACK_HOME)."""
    from ..client import AsyncClient
    from ..runs import RunStore

    with ExitStack() as stack:
        if use_api:
            client = AsyncClient()
        else:
            from ..simulator import Simulator

            sim = stack.enter_context(Simulator(time_scale=sim_time_scale))
            client = AsyncClient(sim.api_key, base_url=sim.base_url)
        async with client:
            yield client, stack.enter_context(RunStore())
