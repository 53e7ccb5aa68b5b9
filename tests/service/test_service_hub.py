"""The class service behind a real JupyterHub: hub tokens, scopes, teachers, and a class under load.

One hub for the session (see conftest's `hub`): JupyterHub from PyPI, configurable-http-proxy
from npm, `framepack service` managed by the hub with the simulator's key in its environment
only, webhooks from the simulator coming back through the hub's proxy. Users, groups and
tokens are made through the hub's REST API.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest
from service_fixtures import IMAGE, create_body
from service_hub import Hub
from service_resetting_proxy import ResettingProxy

from framepack_widgets import Client
from framepack_widgets.simulator import Simulator


@pytest.fixture(scope="module")
def people(hub: Hub) -> dict[str, str]:
    """name -> hub token: two students, a teacher by group, a teacher by admin flag."""
    hub.add_users(["ana", "ben", "tina"])  # root-teacher is the hub's admin from its config
    hub.add_group("teachers", ["tina"])
    return {name: hub.token(name) for name in ("ana", "ben", "tina", "root-teacher")}


def test_hub_tokens_in_either_header_and_the_scope_is_required(hub: Hub, people: dict[str, str]) -> None:
    url = hub.service_url + "account/info"
    as_key = httpx.get(url, headers={"x-api-key": people["ana"]})
    as_token = httpx.get(url, headers={"Authorization": f"token {people['ana']}"})
    assert as_key.status_code == as_token.status_code == 200
    assert as_key.json()["data"]["account_name"] == "ana" and as_key.json()["data"]["budget"]["total"] == 0.9
    assert httpx.get(url, headers={"x-api-key": "not-a-token"}).status_code == 401
    assert httpx.get(url).status_code == 401
    unscoped = hub.token("ben", scopes=["read:users:activity!user=ben"])
    refused = httpx.get(url, headers={"x-api-key": unscoped})
    assert refused.status_code == 403 and "access:services!service=framepack" in refused.json()["message"]


def test_teachers_are_the_hubs_admins_and_the_teachers_group(hub: Hub, people: dict[str, str]) -> None:
    url = hub.service_url + "teacher/api/class"
    assert httpx.get(url, headers={"x-api-key": people["tina"]}).status_code == 200
    assert httpx.get(url, headers={"x-api-key": people["root-teacher"]}).status_code == 200
    assert httpx.get(url, headers={"x-api-key": people["ben"]}).status_code == 403


def test_the_package_client_through_the_hub(hub: Hub, hub_sim: Simulator, people: dict[str, str], tmp_path) -> None:
    with Client(api_key=people["ana"], base_url=hub.service_url.rstrip("/")) as client:
        task = client.generate({"prompt": "ana pans left", "start_image": IMAGE}, timeout=60)
        assert task.video_url.startswith(hub.service_url + "videos/")
        assert client.download(task, tmp_path / "ana.mp4").read_bytes()[4:8] == b"ftyp"
    other = httpx.get(hub.service_url + f"api/v1/task/{task.task_id}", headers={"x-api-key": people["ben"]})
    assert other.status_code == 404
    seen = httpx.get(hub.service_url + f"api/v1/task/{task.task_id}", headers={"x-api-key": people["tina"]})
    assert seen.status_code == 200  # the teacher sees every task
    assert any(d.task_id == task.task_id and d.http_status == 200 for d in hub_sim.webhook_deliveries)


STUDENTS, CREATES, ALLOWED = 30, 5, 3


def test_a_class_under_load(hub: Hub, hub_sim: Simulator) -> None:
    """30 students x 5 concurrent creates, budgets for 3 each, connections reset mid-create and
    retried with the same Idempotency-Key: exactly 90 tasks upstream, the rest 402, no duplicate,
    no cross-student read, and the key in nothing a student receives."""
    names = [f"load{i:02d}" for i in range(STUDENTS)]
    hub.add_users(names)
    tokens = {name: hub.token(name) for name in names}
    before = _load_tasks(hub_sim)
    result = asyncio.run(_load(hub, tokens))
    upstream = _load_tasks(hub_sim) - before
    statuses = [status for answers in result.creates.values() for status, _ in answers]
    assert upstream == STUDENTS * ALLOWED == 90
    assert statuses.count(200) == 90 and statuses.count(402) == STUDENTS * (CREATES - ALLOWED)
    per_student: dict[str, set[str]] = {}
    for (name, key), answers in result.creates.items():
        ids = {task_id for status, task_id in answers if status == 200}
        assert len(ids) <= 1, f"{name}'s key {key} got two tasks: {ids}"  # retries found the first create
        per_student.setdefault(name, set()).update(ids)
    assert all(len(ids) == ALLOWED for ids in per_student.values())
    assert len(set().union(*per_student.values())) == 90  # 0 duplicates
    assert result.resets > 0 and result.retries == result.resets
    assert result.cross_reads == 0 and result.cross_tries >= STUDENTS
    assert result.finished == 90
    secrets = (hub_sim.api_key.encode(), hub.webhook_secret().encode())
    leaks = [what for what, blob in result.received if any(s in blob for s in secrets)]
    assert leaks == [] and len(result.received) > 300
    print(f"\nload: {STUDENTS} students x {CREATES} creates in {result.seconds:.2f} s; {upstream} upstream tasks, "
          f"{result.resets} resets retried, {len(result.received)} answers scanned")


def _load_tasks(sim: Simulator) -> int:
    return sum(1 for task in sim.tasks.values() if str(task.input_echo.get("prompt", "")).startswith("load test"))


class _LoadResult:
    def __init__(self) -> None:
        self.creates: dict[tuple[str, str], list[tuple[int, str | None]]] = {}
        self.received: list[tuple[str, bytes]] = []
        self.resets = self.retries = self.cross_reads = self.cross_tries = self.finished = 0
        self.seconds = 0.0


async def _load(hub: Hub, tokens: dict[str, str]) -> _LoadResult:
    result = _LoadResult()
    port = int(hub.url.rsplit(":", 1)[1])
    proxies = [await ResettingProxy(port, "mid").start(), await ResettingProxy(port, "after").start()]
    rng = random.Random(17)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        def keep(what: str, answer: httpx.Response) -> None:
            result.received.append((what, answer.content + repr(answer.headers.raw).encode()))

        async def create(name: str, number: int) -> None:
            key = f"{name}-run-{number}"
            headers = {"x-api-key": tokens[name], "Idempotency-Key": key}
            body = create_body(prompt=f"load test {name} {number}: the camera zooms in")
            answers = result.creates.setdefault((name, key), [])
            broken = rng.random() < 0.4  # its first attempt goes through a connection that breaks
            if broken:
                proxy = proxies[number % 2]
                try:
                    await http.post(f"{proxy.url}/services/framepack/api/v1/task", json=body, headers=headers)
                    raise AssertionError("the resetting proxy answered")
                except httpx.TransportError:
                    result.retries += 1  # the same create again, with the same key (what the client may do)
            answer = await http.post(hub.service_url + "api/v1/task", json=body, headers=headers)
            keep("create", answer)
            answers.append((answer.status_code, answer.json()["data"]["task_id"] if answer.status_code == 200 else None))

        await asyncio.gather(*(create(name, n) for name in tokens for n in range(CREATES)))
        result.resets = sum(proxy.resets for proxy in proxies)
        result.seconds = time.monotonic() - started

        mine = {name: [tid for (n, _), answers in result.creates.items() if n == name for s, tid in answers if tid]
                for name in tokens}
        names = list(tokens)

        async def follow(name: str, task_id: str) -> None:
            headers = {"x-api-key": tokens[name]}
            for _ in range(30):
                answer = await http.get(hub.service_url + f"api/v1/task/{task_id}?wait=20", headers=headers)
                keep("get", answer)
                data = answer.json()["data"]
                if data["status"] == "completed":
                    result.finished += 1
                    video = await http.get(data["output"]["video_url"])
                    keep("video", video)
                    return
            raise AssertionError(f"{task_id} never completed")

        async def peek(name: str) -> None:
            other = names[(names.index(name) + 1) % len(names)]
            for task_id in mine[other]:
                result.cross_tries += 1
                for method in ("GET", "DELETE"):
                    answer = await http.request(method, hub.service_url + f"api/v1/task/{task_id}",
                                                headers={"x-api-key": tokens[name]})
                    keep("peek", answer)
                    if answer.status_code != 404:
                        result.cross_reads += 1

        await asyncio.gather(*(peek(name) for name in names))
        await asyncio.gather(*(follow(name, tid) for name in names for tid in mine[name]))
        for name in names:
            keep("account", await http.get(hub.service_url + "account/info", headers={"x-api-key": tokens[name]}))
    for proxy in proxies:
        await proxy.stop()
    return result
