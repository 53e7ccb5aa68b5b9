"""Client and AsyncClient end to end against the real simulator over loopback HTTP.

Each fault kind is checked from the client's side, including the money rule: a create
that may have reached the server is never resent, and the simulator shows exactly one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    SubmissionUnknownError,
    TaskFailedError,
)
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.simulator import Fault, Simulator
from framepack_widgets.task import TaskStatus

av = pytest.importorskip("av")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def sim(request: pytest.FixtureRequest):
    """The simulator with its default (realistic) profile, or the one `both_profiles` names."""
    profile = getattr(request, "param", "realistic")
    with Simulator(pending_seconds=0.5, processing_seconds=0.6, long_side=160, profile=profile) as simulator:
        yield simulator


#: Tests where the shape of the answers matters run on both simulator profiles.
both_profiles = pytest.mark.parametrize("sim", ["realistic", "rich"], indirect=True)


DICT_INPUT = {"prompt": "a cat", "start_image": "https://example.com/cat.png", "duration": 10}


def make_input(duration: int = 10, *, end: bool = False, encoding: str = "base64") -> FramepackInput:
    start = Image.new("RGB", (64, 48), (220, 120, 40))
    end_image = Image.new("RGB", (64, 48), (30, 60, 200)) if end else None
    return FramepackInput("the camera slowly zooms in", start, end_image=end_image, duration=duration,
                          image_encoding=encoding)


def client_for(sim: Simulator, **kwargs) -> Client:
    kwargs.setdefault("poll", 0.1)
    return Client(sim.api_key, base_url=sim.base_url, **kwargs)


def async_client_for(sim: Simulator, **kwargs) -> AsyncClient:
    kwargs.setdefault("poll", 0.1)
    return AsyncClient(sim.api_key, base_url=sim.base_url, **kwargs)


def check_mp4(path: Path, duration: int) -> None:
    assert path.read_bytes()[4:8] == b"ftyp"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 30
        frames = sum(1 for _ in container.decode(stream))
    assert abs(frames / 30 - duration) <= 1 / 30 + 1e-9


@both_profiles
def test_generate_and_download_with_client(sim: Simulator, tmp_path: Path) -> None:
    seen: list[TaskStatus] = []
    with client_for(sim, poll=None) as client:  # the default adaptive strategy
        assert client.is_simulator
        task = client.generate(make_input(), on_update=lambda t: seen.append(t.status), timeout=60)
        assert task.status is TaskStatus.COMPLETED and task.video_url
        path = client.download(task, tmp_path / "videos" / "out.mp4")
    assert path == tmp_path / "videos" / "out.mp4"
    check_mp4(path, 10)
    assert seen[0] is TaskStatus.PENDING and seen[-1] is TaskStatus.COMPLETED
    assert sim.count("create") == 1 and len(sim.tasks) == 1


@both_profiles
async def test_generate_and_download_with_async_client(sim: Simulator, tmp_path: Path) -> None:
    updates: list[float | None] = []

    async def on_update(task) -> None:
        updates.append(task.percent)

    async with async_client_for(sim) as client:
        tasks = await asyncio.gather(
            client.generate(make_input(11, end=True), on_update=on_update, timeout=60),
            client.generate(make_input(10), timeout=60),
        )
        paths = [await client.download(t, tmp_path / f"{i}.mp4") for i, t in enumerate(tasks)]
    check_mp4(paths[0], 11)
    check_mp4(paths[1], 10)
    if sim.profile == "rich":
        assert any(p is not None for p in updates)
    else:  # what PiAPI documents for Framepack: no percent at all
        assert updates and all(p is None for p in updates)


async def test_sync_client_inside_running_loop_against_simulator(sim: Simulator) -> None:
    asyncio.get_running_loop()
    with client_for(sim) as client:
        assert client.generate(make_input(), timeout=60).status is TaskStatus.COMPLETED


def test_429_with_retry_after_then_success(sim: Simulator) -> None:
    sim.inject(Fault.status(429, "create", retry_after=1))
    with client_for(sim) as client:
        sleeps: list[float] = []
        client._sleep = sleeps.append
        task = client.create_task(make_input())
    assert sleeps == [1.0]
    assert sim.count("create") == 2 and list(sim.tasks) == [task.task_id]


def test_429_with_http_date_retry_after(sim: Simulator) -> None:
    sim.inject(Fault.status(429, "get", retry_after=3, http_date=True))
    with client_for(sim) as client:
        task = client.create_task(make_input())
        sleeps: list[float] = []
        client._sleep = sleeps.append
        client.get_task(task.task_id)
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 3.0


def test_429_exhausted_is_rate_limit_error(sim: Simulator) -> None:
    sim.inject(Fault.status(429, "create", retry_after=0, times=None))
    with client_for(sim, max_retries=2) as client:
        with pytest.raises(RateLimitError):
            client.create_task(make_input())
    assert sim.count("create") == 3 and len(sim.tasks) == 0


def test_503_on_create_is_retried(sim: Simulator) -> None:
    sim.inject(Fault.status(503, "create", times=2))
    with client_for(sim) as client:
        client._sleep = lambda s: None
        client.create_task(make_input())
    assert sim.count("create") == 3 and len(sim.tasks) == 1


def test_500_on_create_is_not_resent(sim: Simulator) -> None:
    sim.inject(Fault.status(500, "create"))
    with client_for(sim) as client, pytest.raises(SubmissionUnknownError):
        client.create_task(make_input())
    assert sim.count("create") == 1


def test_drop_after_body_on_create_is_submission_unknown_and_one_task(sim: Simulator) -> None:
    sim.inject(Fault.drop_after_body("create"))
    with client_for(sim) as client:
        with pytest.raises(SubmissionUnknownError) as info:
            client.create_task(make_input())
    assert "may have created a task" in str(info.value)
    assert sim.count("create") == 1
    assert len(sim.tasks) == 1  # the task exists (and would be billed): we must not send again


def test_drop_before_body_on_create_is_not_resent(sim: Simulator) -> None:
    sim.inject(Fault.drop_before_body("create"))
    with client_for(sim) as client:
        with pytest.raises(SubmissionUnknownError):
            client.create_task(make_input())
    # the client cannot tell a drop before reading from one after: it never resends
    assert sim.count("create") == 1 and len(sim.tasks) == 0


def test_dropped_gets_are_retried(sim: Simulator) -> None:
    with client_for(sim) as client:
        task = client.create_task(make_input())
        sim.inject(Fault.drop_before_body("get"))
        sim.inject(Fault.drop_after_body("get"))
        client._sleep = lambda s: None
        assert client.get_task(task.task_id).task_id == task.task_id
    assert sim.count("get") == 3


@both_profiles
def test_failed_task_raises_task_failed_with_message(sim: Simulator) -> None:
    sim.inject(Fault.fail_task("GPU out of memory on the simulated worker"))
    with client_for(sim) as client, pytest.raises(TaskFailedError) as info:
        client.generate(make_input(), timeout=60)
    assert "GPU out of memory on the simulated worker" in str(info.value)
    assert info.value.task.status is TaskStatus.FAILED


@both_profiles
async def test_async_failed_task(sim: Simulator) -> None:
    sim.inject(Fault.fail_task("content filter"))
    async with async_client_for(sim) as client:
        with pytest.raises(TaskFailedError, match="content filter"):
            await client.generate(make_input(), timeout=60)


def test_slow_get_is_api_timeout_error(sim: Simulator) -> None:
    with client_for(sim, timeout=0.3, max_retries=1) as client:
        task = client.create_task(make_input())
        sim.inject(Fault.slow(1.5, "get", times=None))
        client._sleep = lambda s: None
        with pytest.raises(APITimeoutError):
            client.get_task(task.task_id)
    assert sim.count("get") == 2


def test_slow_create_is_submission_unknown_and_the_task_appears(sim: Simulator) -> None:
    sim.inject(Fault.slow(1.0, "create"))
    with client_for(sim, timeout=0.3) as client, pytest.raises(SubmissionUnknownError):
        client.create_task(make_input())
    deadline = time.monotonic() + 10
    while not sim.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.count("create") == 1 and len(sim.tasks) == 1


@both_profiles
def test_wait_rides_out_faults_while_polling(sim: Simulator) -> None:
    with client_for(sim) as client:
        task = client.create_task(make_input())
        sim.inject(Fault.status(503, "get", times=2))
        sim.inject(Fault.malformed("get", after=1))
        sim.inject(Fault.status(429, "get", retry_after=0.2, after=3))
        done = client.wait(task, timeout=60)
    assert done.status is TaskStatus.COMPLETED


def test_malformed_json(sim: Simulator) -> None:
    with client_for(sim) as client:
        sim.inject(Fault.malformed("create"))
        with pytest.raises(SubmissionUnknownError):
            client.create_task(make_input())
        assert sim.count("create") == 1 and len(sim.tasks) == 1
        task_id = next(iter(sim.tasks))
        sim.inject(Fault.malformed("get"))
        client._sleep = lambda s: None
        assert client.get_task(task_id).task_id == task_id  # a reading call retries
        assert sim.count("get") == 2


def test_wrong_key_unknown_task_account_and_cancel(sim: Simulator) -> None:
    with Client("wrong-key", base_url=sim.base_url) as bad, pytest.raises(AuthenticationError) as info:
        bad.create_task(make_input())
    assert "wrong-key" not in str(info.value)
    with client_for(sim) as client:
        with pytest.raises(NotFoundError):
            client.get_task("no-such-task")
        info_ = client.account_info()
        assert isinstance(info_, dict) and info_
        task = client.create_task(make_input())
        cancelled = client.cancel(task.task_id)
        assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
        with pytest.raises(TaskFailedError, match="cancelled"):
            client.wait(task.task_id, timeout=10)


@both_profiles
def test_upload_mode_against_simulator(sim: Simulator, tmp_path: Path) -> None:
    with client_for(sim) as client:
        assert client.upload_url == f"{sim.base_url}/api/ephemeral_resource"
        task = client.generate(make_input(end=True, encoding="upload"), timeout=60)
        check_mp4(client.download(task, tmp_path / "u.mp4"), 10)
    assert sim.count("upload") == 2 and sim.count("create") == 1


@both_profiles
async def test_many_concurrent_waits_share_the_async_pool(sim: Simulator) -> None:
    async with async_client_for(sim) as client:  # its own pool: requests queue inside httpx
        created = await asyncio.gather(*(client.create_task(make_input()) for _ in range(30)))
        done = await asyncio.gather(*(client.wait(t, timeout=60) for t in created))
    assert all(t.status is TaskStatus.COMPLETED for t in done)
    assert sim.count("create") == 30 and len(sim.tasks) == 30


# -- the same rules through AsyncClient on its own pool: httpx's transport, httpx's limits


def pooled_client_for(sim: Simulator, **kwargs) -> AsyncClient:
    client = async_client_for(sim, **kwargs)
    assert type(client._http) is httpx.AsyncClient
    assert type(client._http._transport) is httpx.AsyncHTTPTransport

    async def no_sleep(seconds: float) -> None:
        pass

    client._sleep = no_sleep
    return client


async def test_async_create_dropped_after_the_body_is_never_resent(sim: Simulator) -> None:
    sim.inject(Fault.drop_after_body("create"))
    async with pooled_client_for(sim) as client:
        with pytest.raises(SubmissionUnknownError, match="may have created a task"):
            await client.create_task(make_input())
    assert sim.count("create") == 1 and len(sim.tasks) == 1


async def test_async_create_dropped_before_the_body_is_never_resent(sim: Simulator) -> None:
    sim.inject(Fault.drop_before_body("create"))
    async with pooled_client_for(sim) as client:
        with pytest.raises(SubmissionUnknownError):
            await client.create_task(make_input())
    assert sim.count("create") == 1 and len(sim.tasks) == 0


async def test_async_create_retries_only_answers_that_created_nothing(sim: Simulator) -> None:
    sim.inject(Fault.status(503, "create", times=2))
    async with pooled_client_for(sim) as client:
        await client.create_task(make_input())
        sim.inject(Fault.status(500, "create"))
        with pytest.raises(SubmissionUnknownError):
            await client.create_task(make_input())
    assert sim.count("create") == 4 and len(sim.tasks) == 1


async def test_async_create_to_a_closed_port_is_retried_and_says_no_task_was_made() -> None:
    with Simulator() as stopped:
        base_url, api_key = stopped.base_url, stopped.api_key
    sleeps: list[float] = []
    client = AsyncClient(api_key, base_url=base_url, max_retries=2)

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    client._sleep = record
    async with client:
        with pytest.raises(APIConnectionError, match="No task was created"):
            await client.create_task(make_input())
    assert len(sleeps) == 2  # the connection never opened: safe to try again


async def test_async_dropped_gets_are_retried(sim: Simulator) -> None:
    async with pooled_client_for(sim, max_retries=2) as client:
        task = await client.create_task(make_input())
        sim.inject(Fault.drop_before_body("get"))
        sim.inject(Fault.drop_after_body("get"))
        assert (await client.get_task(task)).task_id == task.task_id
    assert sim.count("get") == 3


async def test_async_slow_get_is_api_timeout_error(sim: Simulator) -> None:
    async with pooled_client_for(sim, timeout=0.3, max_retries=1) as client:
        task = await client.create_task(make_input())
        sim.inject(Fault.slow(1.5, "get", times=None))
        with pytest.raises(APITimeoutError):
            await client.get_task(task.task_id)
    assert sim.count("get") == 2


@both_profiles
async def test_async_malformed_json_and_a_wait_through_faults(sim: Simulator) -> None:
    async with pooled_client_for(sim) as client:
        sim.inject(Fault.malformed("create"))
        with pytest.raises(SubmissionUnknownError):
            await client.create_task(make_input())
        assert sim.count("create") == 1 and len(sim.tasks) == 1
        task = await client.create_task(make_input())
        sim.inject(Fault.status(503, "get", times=2))
        sim.inject(Fault.malformed("get", after=1))
        sim.inject(Fault.drop_after_body("get", after=2))
        sim.inject(Fault.status(429, "get", retry_after=0.2, after=3))
        done = await client.wait(task, timeout=60)
    assert done.status is TaskStatus.COMPLETED


def _connections(client: Client | AsyncClient) -> set:
    """Records each response's local socket address: one entry per connection used."""
    seen: set = set()

    def note(response: httpx.Response) -> None:
        seen.add(response.extensions["network_stream"].get_extra_info("client_addr"))

    if isinstance(client, AsyncClient):
        async def hook(response: httpx.Response) -> None:
            note(response)

        client._http.event_hooks["response"].append(hook)
    else:
        client._http.event_hooks["response"].append(note)
    return seen


def test_calls_and_the_download_share_one_kept_alive_connection(sim: Simulator, tmp_path: Path) -> None:
    with client_for(sim) as client:
        used = _connections(client)
        task = client.generate(make_input(), timeout=60)
        client.download(task, tmp_path / "v.mp4")
    assert sim.count("get") >= 2 and sim.count("download") == 1
    assert len(used) == 1


def _recording_failures(client: Client | AsyncClient) -> list[BaseException]:
    """Every transport failure the client meets, also those a wait rides out silently."""
    failures: list[BaseException] = []
    decide = client._after_exception

    def record(spec, request, exc, attempt, max_retries=None):
        failures.append(exc)
        return decide(spec, request, exc, attempt, max_retries)

    client._after_exception = record  # type: ignore[method-assign]
    return failures


async def test_async_waits_queue_for_six_connections_without_pool_timeouts() -> None:
    # 100 waits through 6 connections, each GET held 0.1 s by the server: a round of the
    # queue (~1.7 s) takes longer than the client's timeout (1 s), which must not matter.
    with Simulator(time_scale=20, long_side=64) as sim:
        async with async_client_for(sim, timeout=1.0) as client:
            used = _connections(client)
            failures = _recording_failures(client)
            created = [await client.create_task(make_input()) for _ in range(10)]
            sim.inject(Fault.slow(0.1, "get", times=None))
            started = time.monotonic()
            done = await asyncio.gather(*(client.wait(t, timeout=60) for t in created * 10))
            waited = time.monotonic() - started
    assert failures == []  # no PoolTimeout, nor anything else
    assert len(done) == 100 and all(t.status is TaskStatus.COMPLETED for t in done)
    assert sim.count("get") >= 100 and waited > 1.0
    assert len(used) <= 6


async def test_calls_wait_for_a_pool_held_longer_than_the_timeout(sim: Simulator) -> None:
    # Six long downloads hold every connection for longer than the timeout: the calls
    # queued behind them wait for a free connection instead of failing with PoolTimeout.
    async with async_client_for(sim, timeout=0.5, max_retries=0) as client:
        failures = _recording_failures(client)
        task = await client.create_task(make_input())
        async with contextlib.AsyncExitStack() as downloads:
            for _ in range(6):
                await downloads.enter_async_context(client._http.stream("GET", f"{sim.base_url}/account/info"))
            queued = [asyncio.ensure_future(client.get_task(task)), asyncio.ensure_future(client.create_task(make_input()))]
            await asyncio.sleep(1.0)
            assert not any(call.done() for call in queued)
        got, created = await asyncio.gather(*queued)
    assert failures == []
    assert got.task_id == task.task_id and created.task_id != task.task_id
    assert sim.count("create") == 2 and len(sim.tasks) == 2


def _close_after_each_answer_server(answers: int) -> tuple[int, list[bytes], threading.Event, threading.Thread]:
    """A server that answers one request per connection, then hangs up (while the client's
    pool still keeps that connection as idle); records what each connection received."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered = threading.Event()
    seen: list[bytes] = []
    body = b'{"code": 200, "message": "success", "data": {"task_id": "t-1", "status": "pending"}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        with listener:
            for _ in range(answers):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(5)
                    received = b""
                    while b"\r\n\r\n" not in received:
                        received += conn.recv(65536)
                    seen.append(received)
                    conn.sendall(reply)
                answered.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, seen, answered, thread


def test_a_create_never_rides_a_connection_the_server_closed() -> None:
    port, seen, answered, thread = _close_after_each_answer_server(2)
    with Client("k", base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
        assert client.get_task("t-1").task_id == "t-1"
        answered.wait(5)
        time.sleep(0.05)  # the hang-up has reached this machine
        assert client.create_task(DICT_INPUT).task_id == "t-1"  # on a fresh connection
    thread.join(5)
    assert len(seen) == 2 and seen[1].startswith(b"POST ")


async def test_async_create_never_rides_a_connection_the_kernel_knows_is_dead() -> None:
    # The FIN is in the kernel but the event loop has not run since; httpx (httpcore) asks
    # the socket before reusing an idle connection, so the create goes out on a fresh one
    # instead of failing as "may have been created".
    port, seen, answered, thread = _close_after_each_answer_server(2)
    async with AsyncClient("k", base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
        assert (await client.get_task("t-1")).task_id == "t-1"
        answered.wait(5)  # blocks the loop: the hang-up stays unseen by asyncio
        time.sleep(0.05)
        assert (await client.create_task(DICT_INPUT)).task_id == "t-1"
    thread.join(5)
    assert len(seen) == 2 and seen[1].startswith(b"POST ")


# -- every answer shape PiAPI documents, served by the simulator's faults, taken by the client


async def test_every_output_shape_gives_the_video(sim: Simulator, tmp_path: Path) -> None:
    from framepack_widgets.simulator import OUTPUT_SHAPES

    shapes = list(OUTPUT_SHAPES)
    for shape in shapes:  # one task each, in order
        sim.inject(Fault.output_shape(shape))
    async with async_client_for(sim) as client:
        created = [await client.create_task(make_input()) for _ in shapes]
        done = await asyncio.gather(*(client.wait(t, timeout=60) for t in created))
        for shape, task in zip(shapes, done):
            assert task.video_url == f"{sim.base_url}/files/{task.task_id}.mp4", shape  # never the watermarked one
        check_mp4(await client.download(done[-1], tmp_path / "nested.mp4"), 10)


@both_profiles
def test_status_words_capitalised_unknown_and_unknown_with_a_video(sim: Simulator) -> None:
    sim.inject(Fault.capitalised_statuses())
    sim.inject(Fault.status_words({"pending": "queued", "processing": "generating", "completed": "delivered"}, after=1))
    words: list[str | None] = []
    with client_for(sim) as client:
        first = client.create_task(make_input())
        # Pending, unless a busy machine answered after the simulated queue's 0.2 s.
        assert (first.status_word, first.status) in (("Pending", TaskStatus.PENDING), ("Processing", TaskStatus.PROCESSING))
        assert client.wait(first, timeout=60).status_word == "Completed"
        second = client.create_task(make_input())
        done = client.wait(second, timeout=60, on_update=lambda t: words.append(t.status_word))
    # "delivered" is no word a client knows, but the video is there: completed
    assert done.status is TaskStatus.COMPLETED and done.status_word == "delivered" and done.video_url
    assert words[0] == "queued" and "delivered" in words


@both_profiles
def test_a_bare_create_reply_is_followed(sim: Simulator) -> None:
    sim.inject(Fault.bare_reply())
    with client_for(sim) as client:
        task = client.create_task(make_input())
        assert task.status is TaskStatus.PENDING and task.created_at is not None and task.raw.keys() == {
            "task_id", "status", "created_at"}
        assert client.wait(task, timeout=60).video_url


@both_profiles
def test_completed_without_a_url_for_a_few_polls_then_with_one(sim: Simulator) -> None:
    sim.inject(Fault.url_lag(2))
    with client_for(sim) as client:
        task = client.create_task(make_input())
        client._sleep = lambda s: time.sleep(min(s, 0.3))
        done = client.wait(task, timeout=60)
    assert done.video_url and sim.count("get") >= 3


def test_completed_without_a_url_for_too_long_names_what_it_saw(sim: Simulator) -> None:
    from framepack_widgets.errors import APIError

    sim.inject(Fault.url_lag(50))
    with client_for(sim) as client:
        task = client.create_task(make_input())
        client._sleep = lambda s: time.sleep(min(s, 0.1))
        with pytest.raises(APIError, match="no video URL") as info:
            client.wait(task, timeout=60)
    assert "video_url" not in str(info.value) or "output had" in str(info.value) or "empty" in str(info.value)


def test_a_200_envelope_with_a_code_on_create_never_says_nothing_was_made(sim: Simulator) -> None:
    from framepack_widgets.errors import BadRequestError, PaymentRequiredError

    with client_for(sim) as client:
        sim.inject(Fault.envelope(500, "create", handled=True))  # a task is made, the answer names none
        with pytest.raises(SubmissionUnknownError):
            client.create_task(make_input())
        assert len(sim.tasks) == 1
        sim.inject(Fault.envelope(500, "create", handled=True, with_data=True))  # made, and named: followed
        kept = client.create_task(make_input())
        assert kept.task_id in sim.tasks and client.wait(kept, timeout=60).video_url
        sim.inject(Fault.envelope(400, "create", message="prompt refused"))  # refused: nothing made
        with pytest.raises(BadRequestError, match="prompt refused"):
            client.create_task(make_input())
        sim.inject(Fault.envelope(402, "create", message="insufficient credits"))
        with pytest.raises(PaymentRequiredError, match="Top up"):
            client.create_task(make_input())
    assert len(sim.tasks) == 2 and sim.count("create") == 4


@both_profiles
def test_a_wait_rides_out_200_envelopes_with_error_codes(sim: Simulator) -> None:
    with client_for(sim) as client:
        task = client.create_task(make_input())
        sim.inject(Fault.envelope(503, "get", times=2))
        sim.inject(Fault.envelope(429, "get", after=2))
        assert client.wait(task, timeout=60).video_url
    with client_for(sim) as client:
        sim.inject(Fault.envelope(401, "get", message="key revoked"))
        with pytest.raises(AuthenticationError, match="key revoked"):
            client.wait(task.task_id, timeout=60)
