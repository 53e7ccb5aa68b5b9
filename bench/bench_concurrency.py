"""100 tasks at once through one AsyncClient, against the simulator in a subprocess.

The simulator runs as `python -m framepack_widgets.simulator` in its own process, so this
process's CPU time (time.process_time) is the client's alone. Each task is pending
PENDING s then processing PROCESSING s (real time); all 100 are generated concurrently
with the default poll strategy.

Goals: all complete; wall time <= longest task + 2 s; client CPU <= 1 ms per GET.
For context it also runs the same tasks through an AsyncClient on httpx's default
transport (httpcore), and bare httpx GETs, so the figures travel between machines as ratios.

    .venv/bin/python bench/bench_concurrency.py [--tasks N]
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import secrets
import subprocess
import sys
import time

import httpx

from framepack_widgets.client import AsyncClient

TASKS = 100
PENDING = 2.0
PROCESSING = 8.0


class SimulatorProcess:
    """`python -m framepack_widgets.simulator --port 0 ...`, stopped on exit."""

    def __init__(self, *, pending: float, processing: float) -> None:
        self.api_key = "bench-" + secrets.token_hex(8)
        self.args = [
            sys.executable, "-m", "framepack_widgets.simulator", "--port", "0", "--api-key", self.api_key,
            "--pending-seconds", str(pending), "--processing-seconds", str(processing),
        ]
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> "SimulatorProcess":
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if match:
                self.base_url = match.group(1)
                return self
        self.__exit__()
        raise RuntimeError("the simulator subprocess did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_seconds(self) -> float | None:
        """The subprocess's CPU so far (Linux /proc), for the record."""
        if self.proc is None:
            return None
        try:
            fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None


def _image_b64() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (96, 64), (40, 140, 220)).save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


async def _run(base_url: str, api_key: str, n: int, http: httpx.AsyncClient | None = None) -> dict:
    """Create n tasks at once, then wait for all at once; CPU and GETs per phase."""
    counts = {"GET": 0, "POST": 0}

    async def count(request: httpx.Request) -> None:
        counts[request.method] = counts.get(request.method, 0) + 1

    payload = {"prompt": "the camera pans left", "start_image": _image_b64(), "duration": 10}
    client = AsyncClient(api_key, base_url=base_url, http_client=http)
    client._http.event_hooks["request"].append(count)
    async with client:
        await client.account_info()  # warm up (imports, first connection)
        counts["GET"] = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        created = await asyncio.gather(*(client.create_task(payload) for _ in range(n)), return_exceptions=True)
        cpu1 = time.process_time()
        pending = [t for t in created if not isinstance(t, BaseException)]
        tasks = await asyncio.gather(*(client.wait(t, timeout=300) for t in pending), return_exceptions=True)
        wall = time.perf_counter() - wall0
        cpu2 = time.process_time()
    if http is not None:
        await http.aclose()
    done = [t for t in tasks if not isinstance(t, BaseException) and t.status == "completed"]
    errors = [repr(t) for t in [*created, *tasks] if isinstance(t, BaseException)][:3]
    longest = max(
        ((t.ended_at - t.created_at).total_seconds() for t in done if t.ended_at and t.created_at), default=float("nan")
    )
    return {"n": n, "completed": len(done), "errors": errors, "wall": wall, "cpu_create": cpu1 - cpu0,
            "cpu_wait": cpu2 - cpu1, "cpu": cpu2 - cpu0, "gets": counts["GET"], "creates": counts["POST"],
            "longest": longest}


async def _bare_httpx(base_url: str, api_key: str, width: int, rounds: int) -> float:
    """Context: CPU ms per GET of a bare httpx.AsyncClient (default transport, the same pool
    limits) on warm keep-alive connections, in bursts of `width` at once."""
    limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
    async with httpx.AsyncClient(limits=limits) as http:
        url, headers = f"{base_url}/account/info", {"x-api-key": api_key}
        for _ in range(max(1, 20 // width)):
            await asyncio.gather(*(http.get(url, headers=headers) for _ in range(width)))
        cpu0 = time.process_time()
        for _ in range(rounds):
            await asyncio.gather(*(http.get(url, headers=headers) for _ in range(width)))
        return 1000 * (time.process_time() - cpu0) / (rounds * width)


def measure(n: int = TASKS) -> dict:
    with SimulatorProcess(pending=PENDING, processing=PROCESSING) as sim:
        result = asyncio.run(_run(sim.base_url, sim.api_key, n))
        result["sim_cpu"] = sim.cpu_seconds()
        limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
        default = asyncio.run(_run(sim.base_url, sim.api_key, n, httpx.AsyncClient(limits=limits)))
        result["httpcore_ms"] = 1000 * default["cpu_wait"] / max(1, default["gets"])
        result["raw_ms"] = asyncio.run(_bare_httpx(sim.base_url, sim.api_key, width=n, rounds=5))
        result["floor_ms"] = asyncio.run(_bare_httpx(sim.base_url, sim.api_key, width=1, rounds=300))
    return result


def results(n: int = TASKS) -> list[dict]:
    r = measure(n)
    per_poll_ms = 1000 * r["cpu_wait"] / max(1, r["gets"])
    per_get_ms = 1000 * r["cpu"] / max(1, r["gets"])
    per_create_ms = 1000 * r["cpu_create"] / max(1, r["creates"])
    sim_cpu = f", simulator process {r['sim_cpu']:.1f} s" if r.get("sim_cpu") is not None else ""
    return [
        {"bench": "concurrency", "metric": f"{r['n']} concurrent tasks: completed",
         "figure": f"{r['completed']}/{r['n']}" + (f" ({'; '.join(r['errors'])})" if r["errors"] else ""),
         "goal": "all", "met": r["completed"] == r["n"]},
        {"bench": "concurrency", "metric": "wall time vs longest task (server created->ended)",
         "figure": f"{r['wall']:.2f} s vs {r['longest']:.2f} s (+{r['wall'] - r['longest']:.2f} s)",
         "goal": "<= longest + 2 s", "met": r["wall"] <= r["longest"] + 2.0},
        {"bench": "concurrency", "metric": "client CPU per poll (waiting phase CPU / GETs)",
         "figure": f"{per_poll_ms:.2f} ms ({r['cpu_wait']:.2f} s CPU, {r['gets']} GETs{sim_cpu})",
         "goal": "<= 1 ms", "met": per_poll_ms <= 1.0},
        {"bench": "concurrency", "metric": "client CPU, whole run / GETs (creates included)",
         "figure": f"{per_get_ms:.2f} ms ({r['cpu']:.2f} s CPU; {per_create_ms:.2f} ms per create)",
         "goal": "", "met": None},
        {"bench": "concurrency", "metric": "context: the same run on httpx's default transport (httpcore)",
         "figure": f"{r['httpcore_ms']:.2f} ms CPU per poll (LeanTransport: {per_poll_ms / r['httpcore_ms']:.2f}x)",
         "goal": "", "met": None},
        {"bench": "concurrency", "metric": "context: bare httpx.AsyncClient GET, bursts of the same width",
         "figure": f"{r['raw_ms']:.2f} ms CPU per GET (client per poll: {per_poll_ms / r['raw_ms']:.2f}x)",
         "goal": "", "met": None},
        {"bench": "concurrency", "metric": "context: one bare httpx GET at a time, warm (httpcore floor)",
         "figure": f"{r['floor_ms']:.2f} ms CPU per GET (client per poll: {per_poll_ms / r['floor_ms']:.2f}x)",
         "goal": "", "met": None},
        {"bench": "concurrency", "metric": "GETs per task (default poll, "
                   f"{PENDING:g} s pending + {PROCESSING:g} s processing)",
         "figure": f"{r['gets'] / max(1, r['n']):.1f}", "goal": "", "met": None},
    ]


if __name__ == "__main__":
    args = sys.argv[1:]
    count = int(args[args.index("--tasks") + 1]) if "--tasks" in args else TASKS
    for row in results(count):
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"{row['metric']:<62} {row['figure']:<90} {row['goal']:<18} {met}")
