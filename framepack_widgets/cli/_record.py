"""`framepack record`: one run, and its whole exchange with PiAPI written as a trace.

The trace (JSON: the create reply and every poll, with the key, image data and signed
URL query strings removed) is what a bug report needs: `framepack simulator --replay
TRACE.json` answers exactly as PiAPI did. It is written however the run ends (a failed
task, an error, Ctrl-C), for those are the runs worth reporting. The video is kept too.
Both paths are checked before anything is sent, like every command's: a run is never paid
for only to find that its trace cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from .. import errors
from .._environment import class_service
from ..inputs import FramepackInput
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
from ._exit import EXIT_API_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, exit_code_for

__all__ = ["record_command"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framepack record",
        description="Make one run and write its whole exchange with PiAPI (the create reply and every poll) "
                    "as a JSON trace, without the key, image data or signed URL query strings. Attach the "
                    "trace to bug reports; 'framepack simulator --replay TRACE' answers as PiAPI did.",
    )
    parser.add_argument("image", help="start image: a path or an http(s) URL")
    parser.add_argument("--prompt", required=True, help="what should happen, e.g. 'camera zooms in slowly'")
    parser.add_argument("--end-image", help="optional end image (path or URL)")
    parser.add_argument("--negative-prompt", default="", help="what to avoid")
    parser.add_argument("--duration", default="10", help="seconds of video, 10 to 30 (default 10)")
    parser.add_argument("-o", "--output", default=None,
                        help="where to write the trace: a file, or a folder (default: <image name>.trace.json)")
    parser.add_argument("--video", default=None,
                        help="where to write the MP4: a file, or a folder (default: beside the trace)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting after this many seconds")
    add_backend_options(parser)
    return parser


def _stem(image: str) -> str:
    name = image.split("?", 1)[0].rstrip("/")
    return Path(name).stem or "framepack"


def record_command(argv: list[str]) -> int:
    """Run once, recording; the exit codes are `framepack generate`'s."""
    from ..client import Client, TraceRecorder
    from ._generate import StatusLine

    args = _parser().parse_args(argv)
    err = sys.stderr
    try:  # everything that can be checked is checked before anything is sent
        positive("--timeout", args.timeout)
        scale = time_scale(args)
        duration: object = int(args.duration) if str(args.duration).strip().isdigit() else args.duration
        request = FramepackInput(args.prompt, args.image, end_image=args.end_image,
                                 negative_prompt=args.negative_prompt, duration=duration)
        trace_path, video_path = _paths(args)
        if uses_api():
            Client(audience=CLI).close()  # a bad PIAPI_BASE_URL (or a clear-text one) is said now
    except errors.InvalidInputError as exc:
        print(f"framepack: {exc}", file=err)
        return EXIT_BAD_INPUT

    with ExitStack() as stack:
        if uses_api():
            service = None if os.environ.get("PIAPI_API_KEY", "").strip() else class_service()
            key = service.token if service else os.environ["PIAPI_API_KEY"].strip()
            base_url = service.url if service else (os.environ.get("PIAPI_BASE_URL") or None)
        else:
            from ..simulator import Simulator

            sim = stack.enter_context(Simulator(time_scale=scale))
            key, base_url = sim.api_key, sim.base_url
            print(simulator_notice("the video is"), file=err)
        recorder = TraceRecorder(api_key=key, base_url=base_url or "https://api.piapi.ai")
        http = stack.enter_context(recorder.http_client())  # records every answer; closed by the stack
        client = stack.enter_context(Client(key, base_url=base_url, http_client=http, audience=CLI))
        if uses_api():
            print(f"framepack: recording a run on {describe_backend(client)} (costs ${request.cost_usd:.2f})",
                  file=err)
        line = StatusLine(err)
        outcome, code, problem = "interrupted", EXIT_INTERRUPTED, ""
        try:
            task = client.create_task(request)
            line.message(f"task {task.task_id} created")
            task = client.wait(task, timeout=args.timeout, on_update=line.update)
            line.message("downloading the video")
            written = client.download(task, video_path)
            outcome, code = "completed", EXIT_OK
        except KeyboardInterrupt:
            problem = "interrupted; the task may still run (and be billed) on the server."
        except (errors.FramepackError, OSError) as exc:  # OSError: the disk refused the video
            outcome, code, problem = f"{type(exc).__name__}: {exc}", exit_code_for(exc), str(exc)
        finally:
            line.close()
            try:
                saved: Path | None = recorder.write(trace_path, outcome=outcome)
            except OSError as exc:  # checked before sending, yet the disk may fill up meanwhile
                saved = None
                print(f"framepack: could not write the trace {trace_path} ({exc.strerror or exc}); "
                      "free some space and record again.", file=err)
                code = code if code != EXIT_OK else EXIT_API_ERROR
    if problem:
        print(f"framepack: {problem}", file=err)
    if code == EXIT_OK:
        print(f"framepack: wrote {written}", file=err)
    if saved is not None:
        print(f"framepack: wrote the trace {saved} (no key, image data or signed URLs in it); "
              "attach it to a bug report", file=err)
        print(str(saved))
    return code


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(trace file, video file), each checked writable now: a folder given for either gets the
    default name inside it. InvalidInputError names the option."""
    stem = _stem(args.image)
    trace_path = Path(args.output) if args.output else Path.cwd() / f"{stem}.trace.json"
    if trace_path.is_dir():
        trace_path = trace_path / f"{stem}.trace.json"
    trace_path = writable_file(trace_path, "-o/--output")
    default_video = trace_path.name.removesuffix(".json").removesuffix(".trace") + ".mp4"
    video_path = Path(args.video) if args.video else trace_path.with_name(default_video)
    if video_path.is_dir():
        video_path = video_path / default_video
    return trace_path, writable_file(video_path, "--video")
