"""The classroom service: what it adds to each call, how soon a waiting student learns of the end, a class's load.

- added latency: median of sequential creates and GETs (keep-alive, one client) through the
  service against the same calls to the simulator directly, as a ratio; the service on its
  own (a token table in place of the hub) and behind a real JupyterHub (its proxy and the
  hub's token check, cached).
- completion-to-seen: the simulator's own end time of each task (meta.ended_at) to the moment
  the student's client has the completed answer: plain polling of the simulator (the package's
  `Client.wait`, adaptive) against the service's long poll (`?wait=25`), with PiAPI's webhook
  and with the service polling on its own. Goal: the long poll adds at most 0.3 s to the
  moment the service itself knew (the webhook figure is that moment plus the GETs around it).
- a class's load: 30 students x 5 concurrent creates with budgets for 3 each, through the hub,
  until all 90 videos are in the service; its wall time and the service's memory (RSS).

    .venv/bin/python bench/run.py service
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "service"))

from service_fixtures import IMAGE, ServiceThread, create_body  # noqa: E402
from service_hub import Hub  # noqa: E402

from framepack_widgets import Client  # noqa: E402
from framepack_widgets.service import Identity, ServiceOptions  # noqa: E402
from framepack_widgets.simulator import Simulator  # noqa: E402

CALLS = 60
WAIT_TASKS = 12
STUDENTS, CREATES = 30, 5


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        answer = call()
        out.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return out


def _latency(sim: Simulator, base: str, headers: dict) -> dict[str, float]:
    """Median ms of a create and of a GET, directly and through `base`."""
    body = create_body()
    with httpx.Client(timeout=60) as http:
        direct_key = {"x-api-key": sim.api_key}
        direct_create = _timed(lambda: http.post(f"{sim.base_url}/api/v1/task", json=body, headers=direct_key), CALLS)
        service_create = _timed(lambda: http.post(f"{base}api/v1/task", json=body, headers=headers), CALLS)
        task_id = http.post(f"{base}api/v1/task", json=body, headers=headers).json()["data"]["task_id"]
        direct_get = _timed(lambda: http.get(f"{sim.base_url}/api/v1/task/{task_id}", headers=direct_key), CALLS * 3)
        service_get = _timed(lambda: http.get(f"{base}api/v1/task/{task_id}", headers=headers), CALLS * 3)
    return {"create_direct": _median_ms(direct_create), "create_service": _median_ms(service_create),
            "get_direct": _median_ms(direct_get), "get_service": _median_ms(service_get)}


def _ended(data: dict) -> float:
    return datetime.fromisoformat(data["meta"]["ended_at"].replace("Z", "+00:00")).timestamp()


def _seen_by_polling(sim: Simulator) -> list[float]:
    delays: list[float] = []

    def one(i: int) -> None:
        with Client(api_key=sim.api_key, base_url=sim.base_url) as client:
            task = client.create_task({"prompt": f"polling {i}", "start_image": IMAGE})
            done = client.wait(task, timeout=120)
            seen = time.time()
            delays.append(seen - _ended(done.raw))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(WAIT_TASKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return delays


def _seen_by_long_poll(base: str, headers: dict, known: dict[str, float] | None = None) -> list[float]:
    delays: list[float] = []

    def one(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            task_id = http.post(f"{base}api/v1/task", json=create_body(prompt=f"long poll {i}"),
                                headers=headers).json()["data"]["task_id"]
            while True:
                data = http.get(f"{base}api/v1/task/{task_id}?wait=25", headers=headers).json()["data"]
                if data["status"] == "completed":
                    seen = time.time()
                    delays.append(seen - (known[task_id] if known else _ended(data)))
                    return

    threads = [threading.Thread(target=one, args=(i,)) for i in range(WAIT_TASKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return delays


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1e6


def _service_pid(hub: Hub) -> int | None:
    import psutil

    for child in psutil.Process(hub._process.pid).children(recursive=True):  # type: ignore[union-attr]
        if "service" in child.cmdline() and "framepack_widgets.cli" in child.cmdline():
            return child.pid
    return None


async def _class_load(hub: Hub, tokens: dict[str, str]) -> tuple[float, float, int]:
    """(seconds until every create was answered, seconds until every video is in the service, 402s)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        async def create(name: str, n: int) -> tuple[str, str | None]:
            answer = await http.post(hub.service_url + "api/v1/task", json=create_body(prompt=f"bench {name} {n}"),
                                     headers={"x-api-key": tokens[name], "Idempotency-Key": f"{name}-{n}"})
            return name, answer.json()["data"]["task_id"] if answer.status_code == 200 else None

        made = await asyncio.gather(*(create(name, n) for name in tokens for n in range(CREATES)))
        answered = time.monotonic() - started

        async def finish(name: str, task_id: str) -> None:
            while True:
                answer = await http.get(hub.service_url + f"api/v1/task/{task_id}?wait=25",
                                        headers={"x-api-key": tokens[name]})
                data = answer.json()["data"]
                if data["status"] == "completed":
                    video = await http.get(data["output"]["video_url"])
                    assert video.status_code == 200
                    return

        await asyncio.gather(*(finish(name, tid) for name, tid in made if tid))
    return answered, time.monotonic() - started, sum(1 for _, tid in made if tid is None)


def results() -> list[dict]:
    rows: list[dict] = []
    people = {"tok-bench": Identity("bench")}
    folder = Path(tempfile.mkdtemp(prefix="framepack-bench-service-"))
    with Simulator(time_scale=50, long_side=64) as sim:
        os.environ["PIAPI_API_KEY"] = sim.api_key
        alone = ServiceThread(ServiceOptions.from_environment(port=0, piapi_url=sim.base_url, budget_usd=1000.0,
                                                              max_running=1000, data_dir=folder / "alone"), people)
        try:
            measured = _latency(sim, alone.url, {"x-api-key": "tok-bench"})
        finally:
            alone.stop()
        (folder / "hub").mkdir()
        hub = Hub(folder / "hub", piapi_url=sim.base_url, piapi_key=sim.api_key, budget=1000.0, max_running=1000)
        hub.start()
        try:
            hub.add_users(["bencher"])
            through_hub = _latency(sim, hub.service_url, {"x-api-key": hub.token("bencher")})
        finally:
            hub.stop()
    for kind in ("create", "get"):
        direct, alone_ms, hub_ms = measured[f"{kind}_direct"], measured[f"{kind}_service"], through_hub[f"{kind}_service"]
        rows.append({"bench": "service", "metric": f"{kind}: simulator direct, median ms", "figure": f"{direct:.2f}",
                     "goal": "", "met": None})
        rows.append({"bench": "service", "metric": f"{kind}: through the service alone (ratio)",
                     "figure": f"{alone_ms:.2f} ms ({alone_ms / direct:.1f}x)", "goal": "", "met": None})
        rows.append({"bench": "service", "metric": f"{kind}: through JupyterHub's proxy + service (ratio)",
                     "figure": f"{hub_ms:.2f} ms ({hub_ms / direct:.1f}x)", "goal": "", "met": None})

    # completion-to-seen, at half real speed (a 10 s clip: about 18.5 s), each task's processing a little longer
    # or shorter (a beat's worth), so tasks end at every phase of a polling beat, as real ones do
    spread = random.Random(5)
    with Simulator(time_scale=2, long_side=64, processing_seconds=lambda d: 31.0 + spread.uniform(0, 6.0)) as sim:
        os.environ["PIAPI_API_KEY"] = sim.api_key
        polling = _seen_by_polling(sim)
        polled = ServiceThread(ServiceOptions.from_environment(port=0, piapi_url=sim.base_url, budget_usd=1000.0,
                                                               max_running=1000, data_dir=folder / "polled"), people)
        try:
            through_polling_service = _seen_by_long_poll(polled.url, {"x-api-key": "tok-bench"})
        finally:
            polled.stop()
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        hooked = ServiceThread(ServiceOptions.from_environment(
            port=port, piapi_url=sim.base_url, budget_usd=1000.0, max_running=1000, data_dir=folder / "hooked",
            webhook_url=f"http://127.0.0.1:{port}", allow_http_webhook=True), people)
        try:
            through_webhook = _seen_by_long_poll(hooked.url, {"x-api-key": "tok-bench"})
            deliveries = {d.task_id: d.sent_at for d in sim.webhook_deliveries if d.sent_at}
        finally:
            hooked.stop()
    for name, delays in (("plain polling of the simulator (Client.wait, adaptive)", polling),
                         ("service long poll, service polls PiAPI", through_polling_service),
                         ("service long poll, PiAPI's webhook", through_webhook)):
        rows.append({"bench": "service", "metric": f"completion-to-seen: {name}, median s (max)",
                     "figure": f"{statistics.median(delays):.3f} ({max(delays):.3f})", "goal": "", "met": None})
    ratio = statistics.median(through_webhook) / statistics.median(polling)
    rows.append({"bench": "service", "metric": "completion-to-seen: webhook long poll / plain polling",
                 "figure": f"{ratio:.2f}x", "goal": "", "met": None})
    worst = max(through_webhook)
    rows.append({"bench": "service", "metric": "completion-to-seen with the webhook, worst task, s",
                 "figure": f"{worst:.3f} ({len(deliveries)} webhooks)", "goal": "<= 0.3", "met": worst <= 0.3})

    with Simulator(time_scale=60, long_side=64) as sim:
        (folder / "load").mkdir()
        hub = Hub(folder / "load", piapi_url=sim.base_url, piapi_key=sim.api_key, budget=0.9, max_running=5)
        hub.start()
        try:
            names = [f"student{i:02d}" for i in range(STUDENTS)]
            hub.add_users(names)
            tokens = {name: hub.token(name) for name in names}
            pid = _service_pid(hub)
            before = _rss_mb(pid) if pid else float("nan")
            answered, finished, refused = asyncio.run(_class_load(hub, tokens))
            after = _rss_mb(pid) if pid else float("nan")
        finally:
            hub.stop()
        os.environ.pop("PIAPI_API_KEY", None)
    rows.append({"bench": "service", "metric": f"class load {STUDENTS}x{CREATES}: every create answered, s",
                 "figure": f"{answered:.2f} ({refused} refused 402)", "goal": "", "met": None})
    rows.append({"bench": "service", "metric": f"class load {STUDENTS}x{CREATES}: all 90 videos in the service, s",
                 "figure": f"{finished:.2f}", "goal": "", "met": None})
    rows.append({"bench": "service", "metric": "service memory (RSS) idle -> after the load, MB",
                 "figure": f"{before:.0f} -> {after:.0f}", "goal": "", "met": None})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from run import print_table

    print_table(results())
