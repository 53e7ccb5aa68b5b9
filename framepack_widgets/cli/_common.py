"""What every `framepack` command shares: the options and words about the backend.

Without PIAPI_API_KEY a command runs on the offline simulator, and says so; in a student's
server on a JupyterHub whose teacher set FRAMEPACK_SERVICE_URL, it runs through the class
service instead (the hub token is the credential). Its clients are made for the command
line (`audience="cli"`): their messages name options and variables, never a Python call.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator, Coroutine
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._environment import class_service, sim_time_scale
from ..constants import DEFAULT_BASE_URL
from ..errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient, Client
    from ..runs import RunStore

__all__ = [
    "CLI",
    "add_backend_options",
    "ask_to_start",
    "backend",
    "command_line_words",
    "describe_backend",
    "money",
    "open_backend",
    "positive",
    "simulator_notice",
    "stoppable",
    "time_scale",
    "uses_api",
    "writable_file",
    "writable_folder",
]


#: How the commands make their clients: every message worded for a terminal.
CLI = "cli"


def uses_api() -> bool:
    """True when tasks go to PiAPI (and cost money): a key is set, or the class service is
    configured (FRAMEPACK_SERVICE_URL with the server's hub token; a bad URL is refused here)."""
    return bool(os.environ.get("PIAPI_API_KEY", "").strip()) or class_service() is not None


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sim-time-scale",
        type=float,
        default=None,
        help="offline simulator only: how many times faster than real time tasks run "
        "(default: FRAMEPACK_SIM_TIME_SCALE, else 8)",
    )


def time_scale(args: argparse.Namespace) -> float:
    """--sim-time-scale, else FRAMEPACK_SIM_TIME_SCALE, else 8; checked (InvalidInputError)."""
    if args.sim_time_scale is None:
        return sim_time_scale(8.0)
    return positive("--sim-time-scale", args.sim_time_scale)


def simulator_notice(what: str) -> str:
    """The line that says the simulator is in use; `what`: "the video is" / "the videos are"."""
    return (
        "framepack: no PIAPI_API_KEY set, using the offline simulator "
        f"({what} synthetic, not FramePack's; nothing is charged)"
    )


def describe_backend(client: "Client | AsyncClient") -> str:
    """Where a command sends its tasks, for its first line: "PiAPI", "PiAPI at <url>", "the class
    service at <url>" or "the simulator at <url>" (the URL never with a password)."""
    if client.is_class_service:
        return f"the class service at {client.base_url}"
    if client.is_simulator:
        return f"the simulator at {client.base_url}"
    return "PiAPI" if client.base_url == DEFAULT_BASE_URL else f"PiAPI at {client.base_url}"


#: A sentence that tells a Python user what to call (`run.rerun()`, `runner.attach(run, id)`, `base_url=`).
_PYTHON_ADVICE = re.compile(r"\b[A-Za-z_]\w*(?:\.\w+)*\([^)]*\)|\b[a-z_]+=(?=[\s).,]|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
FOLLOW_UP = ("The run is kept in the run store (FRAMEPACK_HOME): open the widget on it in a notebook to "
             "follow it or send it again.")


_ASIDE = re.compile(r"\s*\((?:[^()]|\([^()]*\))*\)")


def _without_python(sentence: str) -> str | None:
    """The sentence up to the clause that tells a Python user what to call (None: nothing left)."""
    found = _PYTHON_ADVICE.search(sentence)
    if found is None:
        return sentence
    head = sentence[: found.start()]
    cut = max(head.rfind(": "), head.rfind("; "))
    return head[:cut].rstrip(" ,") + "." if cut > 0 else None


def command_line_words(text: str | None) -> str:
    """A run's error or hint for a terminal: what tells a Python user what to call (an aside,
    a clause, a sentence) is left out, and where it was, the one thing a command-line user
    can do instead is said."""
    if not text:
        return ""
    plain = _ASIDE.sub(lambda aside: "" if _PYTHON_ADVICE.search(aside.group(0)) else aside.group(0), text.strip())
    sentences = [_without_python(sentence) for sentence in _SENTENCE_END.split(plain)]
    kept = [sentence for sentence in sentences if sentence]
    if any(sentence != original for sentence, original in zip(sentences, _SENTENCE_END.split(plain))):
        kept.append(FOLLOW_UP)
    return " ".join(kept)


def money(value: float) -> str:
    return f"${value:,.2f}"


def positive(option: str, value: float) -> float:
    """A finite number above zero, or InvalidInputError naming the option."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{option} must be a number above 0, not {value}.")
    return float(value)


def _probe(folder: Path, option: str) -> None:
    """Write and remove a file in `folder`: what permissions say and what the disk does can differ."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".framepack-probe-"):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"{option}: cannot write in {folder} ({exc.strerror or exc}). Choose a folder you can write to. "
            "Nothing was sent."
        ) from None


def writable_file(path: Path, option: str = "-o/--output") -> Path:
    """Where a file can be written: its folder exists (or is made now) and takes a file,
    checked before anything is paid for."""
    if path.is_dir():
        raise InvalidInputError(
            f"{option}: {path} is a folder; give a file name (e.g. {path / 'out.mp4'}). Nothing was sent.")
    writable_folder(path.parent, option)
    return path


def writable_folder(path: Path, option: str = "-o/--output") -> Path:
    """A folder that exists (or can be made) and takes files (checked before paying)."""
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise InvalidInputError(f"{option}: {parent} is a file, not a folder. Nothing was sent.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{option}: cannot create {path} ({exc.strerror or exc}). Nothing was sent.") from None
    _probe(path, option)
    return path


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


def open_backend() -> tuple["AsyncClient | None", "RunStore"]:
    """The PiAPI client (None without a key: the simulator is started later) and the run store,
    made before anything is sent, so a bad PIAPI_BASE_URL or FRAMEPACK_HOME is one clear line
    (InvalidInputError / StoreError) and nothing else."""
    from ..client import AsyncClient
    from ..runs import RunStore

    client = AsyncClient(audience=CLI) if uses_api() else None
    return client, RunStore()


@asynccontextmanager
async def backend(client: "AsyncClient | None", sim_time_scale: float) -> AsyncIterator["AsyncClient"]:
    """The client to use: `client` (PiAPI), else an offline simulator started here, stopped after."""
    from ..client import AsyncClient

    with ExitStack() as stack:
        if client is None:
            from ..simulator import Simulator

            sim = stack.enter_context(Simulator(time_scale=sim_time_scale))
            client = AsyncClient(sim.api_key, base_url=sim.base_url, audience=CLI)
        async with client:
            yield client


async def stoppable(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`, cancelled (like Ctrl-C) when the terminal closes or the process is asked to stop."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    for sig in signals:
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):  # not on this platform, or not the main thread
            pass
    try:
        return await task
    finally:
        for sig in signals:
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
