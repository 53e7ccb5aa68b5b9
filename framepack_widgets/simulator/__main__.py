"""`python -m framepack_widgets.simulator` (and `framepack simulator`): serve in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ..constants import MIN_DURATION
from ._clock import DEFAULT_PENDING_SECONDS, default_processing_seconds
from ._shapes import PROFILE_ENV, PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framepack simulator",
        description="Serve an offline, PiAPI-compatible FramePack simulator on loopback. "
        "Its videos are synthetic (camera moves over your image), not FramePack's.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one; default 8765)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    shortest = DEFAULT_PENDING_SECONDS + default_processing_seconds(MIN_DURATION)
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help=f"run the task clock this many times faster (default 1: a {MIN_DURATION} s clip "
                             f"takes ~{shortest:g} s)")
    parser.add_argument("--api-key", default=None, help="key clients must send (default: a random sim-... key)")
    parser.add_argument("--pending-seconds", type=float, default=None, help="seconds a task stays pending")
    parser.add_argument("--processing-seconds", type=float, default=None, help="seconds a task stays processing")
    parser.add_argument("--workdir", default=None, help="keep uploads and rendered videos in this folder")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="keep tasks, their input images and videos in DIR, so a later simulator over the "
                             "same DIR (or one running beside this) serves them; implies --workdir DIR")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="how answers look: realistic (what PiAPI documents for Framepack: no percent, "
                             "output null until the video exists) or rich (percent and log lines); "
                             f"default: ${PROFILE_ENV}, else realistic")
    parser.add_argument("--replay", default=None, metavar="TRACE.json",
                        help="answer with a trace written by 'framepack record' (each GET gets the next "
                             "recorded answer) instead of simulating tasks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until Ctrl-C (or SIGTERM); returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535 (0 picks a free one), not {args.port}")
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
    from . import Simulator

    try:
        sim = Simulator(
            port=args.port, host=args.host, time_scale=args.time_scale, api_key=args.api_key,
            pending_seconds=args.pending_seconds, processing_seconds=args.processing_seconds,
            workdir=args.workdir, state_dir=args.state_dir, profile=args.profile, replay=args.replay,
        )
        sim.start()
    except (ValueError, RuntimeError) as exc:
        print(f"framepack simulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"framepack simulator: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
              "pick another port with --port N, or --port 0 for any free one", file=sys.stderr)
        return 2

    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        try:
            signal.signal(signal.SIGTERM, lambda *_: done.set())
        except (ValueError, OSError):  # pragma: no cover - unusual embedding
            pass
    bound = f"{args.host}:{sim.port}" if ":" not in args.host else f"[{args.host}]:{sim.port}"
    print(f"FramePack simulator listening on {bound}, reached as {sim.base_url} (time scale "
          f"{sim.time_scale:g}x, {sim.profile} answers).", flush=True)
    if not _loopback(args.host):
        print(f"WARNING: bound to {args.host}, not loopback: other machines on the network can reach it "
              "and send it work. Use --host 127.0.0.1 unless that is what you want.", file=sys.stderr, flush=True)
    if args.replay:
        print(f"Replaying the trace {args.replay}: every create and GET gets its recorded answers.", flush=True)
    if sim.state_dir is not None:
        print(f"Tasks are kept in {sim.state_dir} (inputs and videos too; prune with Simulator.prune_state()).",
              flush=True)
    print("Its videos are SYNTHETIC: camera moves over your image, not FramePack output.", flush=True)
    print("Point the client at it with:", flush=True)
    print(f"  export PIAPI_BASE_URL={sim.base_url} PIAPI_API_KEY={sim.api_key}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("simulator stopped.", flush=True)
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
