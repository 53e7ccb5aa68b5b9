"""`framepack generate`: one image and a prompt to one MP4, with a live status line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from .. import errors
from ..inputs import FramepackInput
from ..task import Task
from ._common import (
    CLI,
    add_backend_options,
    describe_backend,
    positive,
    simulator_notice,
    time_scale,
    uses_api,
    writable_file,
)
from ._exit import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, exit_code_for

__all__ = ["add_generate_parser", "generate_command"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StatusLine:
    """One status line on stderr: rewritten in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO, *, expected_seconds: float | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.expected = expected_seconds
        self._last_text = ""
        self._frame = 0

    def update(self, task: Task) -> None:
        elapsed = time.monotonic() - self.started
        if task.percent is not None:
            progress = f"{task.percent:3.0f}%"
        elif self.expected and not task.status.is_terminal:
            progress = f"~{min(99.0, 100 * elapsed / self.expected):3.0f}% (estimate)"
        else:
            progress = ""
        tail = f"  {task.logs[-1]}" if task.logs else ""
        text = f"{task.status.value:<10} {elapsed:6.1f} s  {progress}{tail}".rstrip()
        self._write(text)

    def message(self, text: str) -> None:
        self._write(text, force_newline=True)

    def _write(self, text: str, *, force_newline: bool = False) -> None:
        if self.tty:
            self._frame = (self._frame + 1) % len(_SPINNER)
            width = max(20, _terminal_width() - 1)
            line = f"{_SPINNER[self._frame]} {text}"[:width]
            self.stream.write("\r\033[K" + line + ("\n" if force_newline else ""))
            self.stream.flush()
        elif force_newline or text.split("  ")[0] != self._last_text.split("  ")[0]:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_text = text

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 80


def add_generate_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    gen = sub.add_parser("generate", help="turn an image and a prompt into an MP4")
    gen.add_argument("image", help="start image: a path or an http(s) URL")
    gen.add_argument("--prompt", required=True, help="what should happen, e.g. 'camera zooms in slowly'")
    gen.add_argument("--end-image", help="optional end image (path or URL)")
    gen.add_argument("--negative-prompt", default="", help="what to avoid")
    gen.add_argument("--duration", default="10", help="seconds of video, 10 to 30 (default 10)")
    gen.add_argument("-o", "--output", default=None, help="where to write the MP4 (default: <image name>.mp4)")
    gen.add_argument("--timeout", type=float, default=1800.0, help="give up waiting after this many seconds")
    add_backend_options(gen)


def generate_command(args: argparse.Namespace) -> int:
    """Create one task, follow it on a status line, download its video; the exit code says how it went."""
    from ..client import Client

    err = sys.stderr
    with ExitStack() as stack:
        try:  # everything that can be checked is checked before anything is sent
            timeout = positive("--timeout", args.timeout)
            scale = time_scale(args)
            duration: object = int(args.duration) if str(args.duration).strip().isdigit() else args.duration
            request = FramepackInput(
                args.prompt, args.image, end_image=args.end_image, negative_prompt=args.negative_prompt,
                duration=duration,
            )
            output = Path(args.output) if args.output else _default_output(args.image)
            if output.is_dir():
                output = output / _default_output(args.image).name
            output = writable_file(output)
            client = stack.enter_context(Client(audience=CLI)) if uses_api() else None
        except errors.InvalidInputError as exc:
            print(f"framepack: {exc}", file=err)
            return EXIT_BAD_INPUT
        if client is not None:
            print(f"framepack: sending to {describe_backend(client)} (costs ${request.cost_usd:.2f})", file=err)
        else:
            from ..simulator import Simulator

            sim = stack.enter_context(Simulator(time_scale=scale))
            client = stack.enter_context(Client(sim.api_key, base_url=sim.base_url, audience=CLI))
            print(simulator_notice("the video is"), file=err)
        line = StatusLine(err)
        task: Task | None = None
        try:
            task = client.create_task(request)
            line.message(f"task {task.task_id} created")
            line.update(task)
            task = client.wait(task, timeout=timeout, on_update=line.update)
            line.update(task)
            line.message("downloading the video")
            written = client.download(task, output)
            _write_settings(written, request, task, simulated=client.is_simulator, err=err)
        except KeyboardInterrupt:
            line.close()
            print("framepack: interrupted; the task may still run (and be billed) on the server.", file=err)
            _say_task(task, err)
            return EXIT_INTERRUPTED
        except (errors.FramepackError, OSError) as exc:
            line.close()
            print(f"framepack: {exc}", file=err)
            _say_task(task, err)
            return exit_code_for(exc)
        line.close()
    print(f"framepack: wrote {written}", file=err)
    print(str(written))
    return EXIT_OK


def _write_settings(path: Path, request: FramepackInput, task: Task, *, simulated: bool, err: TextIO) -> None:
    """The run's settings into the MP4's comment tag. The video is paid for and saved: a
    file whose tag cannot be written is kept as it came, with a word on stderr."""
    from ..video import VideoFileError, video_settings, write_settings

    params = request.to_params()
    settings = video_settings(
        prompt=request.prompt, negative_prompt=request.negative_prompt, duration=request.duration,
        task_id=task.task_id, simulated=simulated, start_image=params["start_image"], end_image=params["end_image"],
    )
    try:
        write_settings(path, settings)
    except (VideoFileError, OSError) as exc:
        print(f"framepack: the video is saved as it came; its settings could not be written into it ({exc})", file=err)


def _say_task(task: Task | None, err: TextIO) -> None:
    """Whatever went wrong after the create, the person learns which task they paid for."""
    if task is not None:
        url = f"; its video: {task.video_url}" if task.video_url else ""
        print(f"framepack: the task is {task.task_id} (status {task.status.value}){url}", file=err)


def _default_output(image: str) -> Path:
    if "://" in image:
        stem = Path(image.split("?")[0].rstrip("/")).stem or "framepack"
    else:
        stem = Path(image).stem or "framepack"
    return Path.cwd() / f"{stem}.mp4"
