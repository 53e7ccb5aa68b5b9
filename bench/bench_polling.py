"""How many GETs a wait costs, and how late it notices that the task finished.

Runs the real `Client.wait` loop (httpx.MockTransport, injected clock and sleep) in
virtual time, so hundreds of 3-minute tasks take seconds. Each simulated task is pending
for 1.5-3.5 s, then processing with an integer percent that grows linearly with a little
noise (like the simulator), then completed `length` (+-1 s, a random phase) seconds after
creation.

"with an ETA hint" rows pass `expected_seconds` (what the run store learns from finished runs)
equal to the true completion time times a uniform random factor in [0.8, 1.2] per trial
(a +-20 % estimate error), with no percent reported.

Goal: the default strategy's median delay <= 1.5 s, with <= 1/3 of the GETs of polling
every second. One real-time 20 s task against the simulator confirms it (skip with --no-real).

    .venv/bin/python bench/bench_polling.py [--trials N] [--no-real]
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import httpx

from framepack_widgets.client import AdaptivePoll, Client, ExponentialPoll, FixedPoll, PollStrategy
from framepack_widgets.task import parse_task

LENGTHS = (20.0, 60.0, 180.0)
TRIALS = 200
GOAL_DELAY = 1.5
GOAL_RATIO = 1 / 3
HINT_ERROR = 0.2  # the hint is the true duration times uniform(1 - HINT_ERROR, 1 + HINT_ERROR)
HINTED = f"default, no percent, with an ETA hint (+-{HINT_ERROR:.0%} uniform error)"


def strategies() -> list[tuple[str, PollStrategy]]:
    return [
        ("default (adaptive)", AdaptivePoll()),
        ("default, no percent reported", AdaptivePoll()),
        (HINTED, AdaptivePoll()),
        ("fixed 0.5 s", FixedPoll(0.5)),
        ("fixed 1 s", FixedPoll(1.0)),
        ("fixed 3 s", FixedPoll(3.0)),
        ("exponential 1,1.5,30", ExponentialPoll(1.0, 1.5, 30.0)),
    ]


class VirtualTask:
    """A task whose state is a function of virtual time, served through MockTransport."""

    def __init__(self, length: float, rng: random.Random, *, percent: bool = True) -> None:
        self.length = length + rng.uniform(-1.0, 1.0)  # random phase against any fixed interval
        self.percent = percent
        self.pending = rng.uniform(1.5, 3.5)
        self.rng = rng
        self.now = 0.0
        self.gets = 0

    def data(self) -> dict:
        t = self.now
        if t < self.pending:
            return {"task_id": "v", "status": "pending", "output": None}
        if t < self.length:
            fraction = (t - self.pending) / (self.length - self.pending)
            noisy = fraction * 100 + self.rng.gauss(0.0, 1.0)
            output: dict = {"video_url": ""}
            if self.percent:
                output["percent"] = max(0, min(99, int(noisy)))
            return {"task_id": "v", "status": "processing", "output": output}
        return {"task_id": "v", "status": "completed", "output": {"video_url": "https://example.invalid/v.mp4"}}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.gets += 1
        return httpx.Response(200, json={"code": 200, "message": "success", "data": self.data()})


def run_one(
    strategy: PollStrategy, length: float, rng: random.Random, *, percent: bool = True, hint: bool = False
) -> tuple[int, float]:
    """(GETs, seconds between completion and the client seeing it)."""
    task = VirtualTask(length, rng, percent=percent)
    expected = task.length * rng.uniform(1 - HINT_ERROR, 1 + HINT_ERROR) if hint else None
    http = httpx.Client(transport=httpx.MockTransport(task.handler))
    client = Client("bench-key", http_client=http, poll=strategy)

    def sleep(seconds: float) -> None:
        task.now += seconds

    client._sleep = sleep
    client._clock = lambda: task.now
    first = parse_task({"code": 200, "data": {"task_id": "v", "status": "pending"}})
    done = client.wait(first, timeout=10 * length, expected_seconds=expected)
    assert done.status == "completed"
    http.close()
    return task.gets, task.now - task.length


def measure(trials: int = TRIALS, seed: int = 1) -> dict[tuple[str, float], dict]:
    out: dict[tuple[str, float], dict] = {}
    for length in LENGTHS:
        for name, strategy in strategies():
            rng = random.Random(seed * 1000 + int(length))
            gets, delays = [], []
            for _ in range(trials):
                g, d = run_one(strategy, length, rng, percent="no percent" not in name, hint="ETA hint" in name)
                gets.append(g)
                delays.append(d)
            out[(name, length)] = {
                "median_delay": statistics.median(delays),
                "p90_delay": sorted(delays)[int(0.9 * len(delays)) - 1],
                "mean_gets": statistics.fmean(gets),
            }
    return out


def real_time_check(length: float = 20.0) -> dict | None:
    """One real-time run against the simulator: a `length` s task (2 s pending), default poll."""
    try:
        from framepack_widgets.simulator import Simulator
    except ImportError:
        return None
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(buf, "JPEG")
    image = base64.b64encode(buf.getvalue()).decode()
    with Simulator(pending_seconds=2.0, processing_seconds=length - 2.0, long_side=160) as sim:
        with Client(sim.api_key, base_url=sim.base_url) as client:
            task = client.create_task({"prompt": "zoom in", "start_image": image, "duration": 10})
            done = client.wait(task, timeout=10 * length)
            seen = time.time()
        gets = sim.count("get")
    assert done.ended_at is not None
    return {"gets": gets, "delay": seen - done.ended_at.timestamp(), "length": length}


def results(trials: int = TRIALS, real: bool = True) -> list[dict]:
    figures = measure(trials)
    rows: list[dict] = []
    for length in LENGTHS:
        reference = figures[("fixed 1 s", length)]["mean_gets"]
        for name, _ in strategies():
            f = figures[(name, length)]
            is_default = name in ("default (adaptive)", HINTED)
            rows.append({
                "bench": "polling",
                "metric": f"{name}, {length:.0f} s task: median delay (p90)",
                "figure": f"{f['median_delay']:.2f} s ({f['p90_delay']:.2f} s)",
                "goal": f"<= {GOAL_DELAY} s" if is_default else "",
                "met": (f["median_delay"] <= GOAL_DELAY) if is_default else None,
            })
            ratio = f["mean_gets"] / reference
            rows.append({
                "bench": "polling",
                "metric": f"{name}, {length:.0f} s task: GETs per task (vs fixed 1 s)",
                "figure": f"{f['mean_gets']:.1f} ({ratio:.2f}x)",
                "goal": "<= 0.33x" if is_default else "",
                "met": (ratio <= GOAL_RATIO) if is_default else None,
            })
    if real:
        check = real_time_check()
        if check is not None:
            rows.append({
                "bench": "polling",
                "metric": f"real time, simulator, {check['length']:.0f} s task: delay, GETs",
                "figure": f"{check['delay']:.2f} s, {check['gets']} GETs",
                "goal": f"<= {GOAL_DELAY} s",
                "met": check["delay"] <= GOAL_DELAY,
            })
    return rows


def print_table(rows: list[dict]) -> None:
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        print(f"{r['metric'].ljust(width)}  {r['figure']:<22} {r['goal']:<10} {met}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[args.index("--trials") + 1]) if "--trials" in args else TRIALS
    started = time.perf_counter()
    print_table(results(n, real="--no-real" not in args))
    print(f"({time.perf_counter() - started:.1f} s)")
