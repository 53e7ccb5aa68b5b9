"""RunStore: ordering and pages, two processes writing at once, a crash between the write and
the request, schema versions, images and videos stored once, pruning, and no key on disk."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from framepack_widgets.runs import ownership
from framepack_widgets.runs import store as store_mod
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, Runner, RunStage
from framepack_widgets.runs import RunStore, StoreVersionError
from framepack_widgets.task import Task, TaskStatus

KEY = "sk-live-SECRET-KEY-must-not-be-on-disk-42"


def make_input(prompt: str = "a boat drifts", *, color=(30, 90, 200), duration: int = 10) -> FramepackInput:
    from PIL import Image

    return FramepackInput(prompt, Image.new("RGB", (80, 60), color), duration=duration)


def add_run(store: RunStore, prompt: str, *, stage: RunStage = RunStage.QUEUED, sweep_id: str | None = None,
            inp: FramepackInput | None = None, **fields: Any) -> Run:
    inp = inp or make_input(prompt)
    if inp.prompt != prompt:
        inp = inp.replace(prompt=prompt)
    run = Run.from_input(inp, sweep_id=sweep_id)
    store.put_image(inp.start_image)
    store.save(run)
    if stage is not RunStage.QUEUED or fields:
        run.update(stage=stage, **fields)
        store.save(run)
    return run


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "store") as s:
        yield s


class MiniClient:
    """The smallest fake AsyncClient; `log` gets one line per create request."""

    def __init__(self, log: Path | None = None, *, crash_on_create: bool = False) -> None:
        self.api_key = KEY
        self.is_simulator = False
        self.log = log
        self.crash_on_create = crash_on_create
        self.creates: list[str] = []

    async def create_task(self, input: Any) -> Task:
        if self.crash_on_create:  # the kernel dies with the request in flight
            os._exit(17)
        self.creates.append(input.prompt)
        if self.log is not None:
            with open(self.log, "a") as fh:  # O_APPEND: whole lines from several processes
                fh.write(f"{os.getpid()} {input.prompt}\n")
        return Task(task_id=f"t-{input.prompt}", status=TaskStatus.PENDING)

    async def wait(self, task_or_id: Any, *, timeout: Any = None, on_update: Any = None) -> Task:
        task_id = task_or_id.task_id if isinstance(task_or_id, Task) else task_or_id
        await asyncio.sleep(0.01)
        if on_update:
            on_update(Task(task_id=task_id, status=TaskStatus.PROCESSING, percent=50.0))
        return Task(task_id=task_id, status=TaskStatus.COMPLETED, video_url="https://x.example/v.mp4")

    async def download(self, task: Task, path: Any) -> Path:
        Path(path).write_bytes(b"\x00\x00\x00\x18ftypmp42" + task.task_id.encode())
        return Path(path)

    async def cancel(self, task_id: str) -> None:
        return None


# --------------------------------------------------------------------------- basics
def test_folder_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPACK_HOME", str(tmp_path / "home"))
    with RunStore() as s:
        assert s.folder == tmp_path / "home" and (tmp_path / "home" / "runs.sqlite3").exists()
    monkeypatch.delenv("FRAMEPACK_HOME")
    monkeypatch.chdir(tmp_path)
    with RunStore() as s:
        assert s.folder == tmp_path / ".framepack"
    with RunStore(tmp_path / "explicit") as s:
        assert s.folder == tmp_path / "explicit"
        for sub in ("images", "videos", "tmp"):
            assert (s.folder / sub).is_dir()


def test_wal_mode_and_pragmas(store: RunStore) -> None:
    con = sqlite3.connect(store.db_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == store_mod.SCHEMA_VERSION
    indexes = {row[1] for row in con.execute("SELECT * FROM sqlite_master WHERE type = 'index'")}
    assert {"runs_seq", "runs_stage"} <= indexes
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN SELECT * FROM runs ORDER BY seq DESC LIMIT 50"))
    assert "runs_seq" in plan and "TEMP B-TREE" not in plan  # the history page walks the index
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN SELECT * FROM runs WHERE stage IN ('queued')"))
    assert "runs_stage" in plan
    con.close()
    assert store.integrity_check() == "ok"


def test_ordering_and_pagination(store: RunStore) -> None:
    runs = [add_run(store, f"prompt {i}", sweep_id="s1" if i % 3 == 0 else None) for i in range(25)]
    assert [r.seq for r in runs] == list(range(1, 26))
    assert store.count() == 25 and len(store) == 25
    page1 = store.list(limit=10)
    assert [r.prompt for r in page1] == [f"prompt {i}" for i in range(24, 14, -1)]  # newest first
    page2 = store.list(limit=10, offset=10)
    assert [r.prompt for r in page2] == [f"prompt {i}" for i in range(14, 4, -1)]
    keyset = store.list(limit=10, before=page1[-1].seq)  # the same page, by keyset
    assert [r.run_id for r in keyset] == [r.run_id for r in page2]
    assert [r.prompt for r in store.list(limit=10, offset=20)] == [f"prompt {i}" for i in range(4, -1, -1)]
    assert store.list(limit=10, offset=30) == []
    assert len(store.list(limit=None)) == 25
    assert store.count(sweep_id="s1") == 9 and {r.sweep_id for r in store.list(sweep_id="s1")} == {"s1"}

    # Updating a run keeps its place (order is by creation, not by last change).
    runs[3].update(stage=RunStage.PROCESSING, task_id="t3", percent=12.5)
    store.save(runs[3])
    assert store.list(limit=1)[0].run_id == runs[24].run_id
    got = store.get(runs[3].run_id)
    assert got.seq == 4 and got.stage is RunStage.PROCESSING and got.percent == 12.5 and got.task_id == "t3"
    assert [e.stage for e in got.history] == [RunStage.QUEUED, RunStage.PROCESSING]
    assert got.history[0].at.tzinfo is not None
    with pytest.raises(KeyError, match="no run"):
        store.get("nope")


def test_unfinished_and_stage_filter(store: RunStore) -> None:
    made = {stage: add_run(store, stage.value, stage=stage) for stage in RunStage}
    unfinished = {r.stage for r in store.unfinished()}
    assert unfinished == {
        RunStage.QUEUED, RunStage.SUBMITTING, RunStage.PENDING, RunStage.PROCESSING, RunStage.DOWNLOADING,
        RunStage.SUBMISSION_UNKNOWN, RunStage.TIMED_OUT,
    }
    assert [r.seq for r in store.unfinished()] == sorted(r.seq for r in store.unfinished())  # oldest first
    assert store.count(stages=["completed", RunStage.FAILED]) == 2
    assert made[RunStage.COMPLETED].done() and made[RunStage.TIMED_OUT].done()
    assert not made[RunStage.QUEUED].done()


def test_runs_are_json_safe_and_exportable(store: RunStore) -> None:
    add_run(store, "one", stage=RunStage.COMPLETED, task_id="t1", submitted_at=datetime.now(timezone.utc))
    add_run(store, "two")
    rows = store.to_dicts()
    json.dumps(rows)
    assert [r["prompt"] for r in rows] == ["two", "one"]
    assert "history" not in rows[0] and "history" in store.to_dicts(history=True)[0]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            store.to_dataframe()
    else:  # pragma: no cover - pandas is optional
        assert len(store.to_dataframe()) == 2


def test_estimates_learn_from_finished_runs(store: RunStore) -> None:
    assert store.estimate_seconds(10, backend="piapi") is None  # no history: the caller's default
    start = datetime.now(timezone.utc) - timedelta(minutes=10)
    for i, wall in enumerate((100.0, 120.0, 110.0)):
        add_run(store, f"r{i}", stage=RunStage.COMPLETED, submitted_at=start, finished_at=start + timedelta(seconds=wall))
    assert store.eta_samples(backend="piapi") == [(10.0, 110.0, "piapi"), (10.0, 120.0, "piapi"), (10.0, 100.0, "piapi")]
    assert store.estimate_seconds(10, backend="piapi") == pytest.approx(110.0)
    assert store.estimate_seconds(20, backend="simulator") is None


# --------------------------------------------------------------------------- two processes
def _writer(folder: str, name: str, count: int, barrier: Any) -> None:
    from PIL import Image

    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Run, RunStage
    from framepack_widgets.runs import RunStore
    from framepack_widgets.task import TaskStatus

    store = RunStore(folder)
    base = FramepackInput("base", Image.new("RGB", (64, 48), (1, 2, 3)))
    store.put_image(base.start_image)
    barrier.wait()
    for i in range(count):
        run = Run.from_input(base.replace(prompt=f"{name} {i}"))
        store.save(run)
        run.update(stage=RunStage.SUBMITTING)
        store.save(run)
        run.update(stage=RunStage.PENDING, task_id=f"{name}-{i}", status=TaskStatus.PENDING)
        store.save(run)
        run.update(stage=RunStage.COMPLETED, status=TaskStatus.COMPLETED, percent=100.0)
        store.save(run)
        if i % 50 == 0:
            store.list(limit=20)  # readers and writers interleave too
    store.close()


def test_two_processes_writing_at_once_corrupt_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    RunStore(folder).close()  # created once; both processes open the existing store
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(folder), name, 200, barrier)) for name in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0, 0]

    with RunStore(folder) as store:
        assert store.integrity_check() == "ok"
        assert store.count() == 400
        runs = store.list(limit=None)
        assert {r.prompt for r in runs} == {f"{n} {i}" for n in "AB" for i in range(200)}
        assert all(r.stage is RunStage.COMPLETED for r in runs)
        seqs = [r.seq for r in runs]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 400
        for prefix in "AB":  # each process's runs keep their own order
            mine = [int(r.prompt.split()[1]) for r in reversed(runs) if r.prompt.startswith(prefix)]
            assert mine == list(range(200))
        sample = store.get(runs[0].run_id)
        assert [e.stage.value for e in sample.history] == ["queued", "submitting", "pending", "completed"]
        events = store._query("SELECT COUNT(*) FROM run_events")[0][0]
        assert events == 400 * 4
        assert len(list(store.images_dir.iterdir())) == 1  # one image, stored once


def _crash_before_sending(folder: str, mode: str) -> None:
    """A kernel that dies between storing a run and (maybe) sending its create request."""
    from PIL import Image

    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Runner
    from framepack_widgets.runs import RunStore

    async def main() -> None:
        store = RunStore(folder)
        runner = Runner(MiniClient(crash_on_create=(mode == "in-flight")), store)
        runner.start(FramepackInput(mode, Image.new("RGB", (64, 48), (9, 9, 9))))
        if mode == "stored":
            os._exit(17)  # dies right after the write, before the run's task gets to send anything
        await asyncio.sleep(30)  # in-flight: create_task kills the process

    asyncio.run(main())


async def test_crash_between_write_and_request_then_resume(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    ctx = multiprocessing.get_context("spawn")
    for mode in ("stored", "in-flight"):
        proc = ctx.Process(target=_crash_before_sending, args=(str(folder), mode))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 17
    with RunStore(folder) as store:
        stages = {r.prompt: r.stage for r in store.list()}
        assert stages == {"stored": RunStage.QUEUED, "in-flight": RunStage.SUBMITTING}

        client = MiniClient()
        runner = Runner(client, store)
        resumed = runner.resume()
        assert {r.prompt for r in resumed} == {"stored", "in-flight"}
        assert [r.prompt for r in runner.awaiting_consent] == ["stored"]
        runner.send()
        await asyncio.gather(*(r.wait() for r in runner.active))
        final = {r.prompt: r for r in store.list()}
        assert final["stored"].stage is RunStage.COMPLETED  # certainly never sent: sent once now
        assert final["in-flight"].stage is RunStage.SUBMISSION_UNKNOWN  # may have been sent: never resent
        assert "task list" in final["in-flight"].hint
        assert client.creates == ["stored"]

        Runner(client, store).resume()  # again: nothing more is sent
        await asyncio.sleep(0.05)
        assert client.creates == ["stored"]


def _resume_in_process(folder: str, log: str, barrier: Any) -> None:
    async def main() -> None:
        store = RunStore(folder)
        runner = Runner(MiniClient(Path(log)), store, max_concurrent=4)
        barrier.wait()
        runner.resume()
        runner.send()  # both kernels' people say "Send" at once: each run still goes once
        await runner.wait_all()
        store.close()

    asyncio.run(main())


def test_two_kernels_resuming_the_same_store_send_each_run_once(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with RunStore(folder) as store:
        for i in range(12):
            run = add_run(store, f"queued {i}")
            store.save(run, owner=f"{ownership.HOST}:999999999:gone")  # a kernel that no longer exists
    log = tmp_path / "creates.log"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_resume_in_process, args=(str(folder), str(log), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    prompts = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    assert sorted(prompts) == sorted(f"queued {i}" for i in range(12))  # each exactly once
    with RunStore(folder) as store:
        assert {r.stage for r in store.list(limit=None)} == {RunStage.COMPLETED}


# --------------------------------------------------------------------------- schema versions
def test_schema_version_is_set(store: RunStore) -> None:
    assert store.schema_version == store_mod.SCHEMA_VERSION == len(store_mod.MIGRATIONS) >= 1


def test_a_newer_store_is_refused_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    RunStore(folder).close()
    con = sqlite3.connect(folder / "runs.sqlite3")
    con.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 5}")
    con.commit()
    con.close()
    with pytest.raises(StoreVersionError, match="newer version") as info:
        RunStore(folder)
    assert "Upgrade framepack-widgets" in str(info.value) and str(folder) in str(info.value)


def test_migration_from_v0(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    sqlite3.connect(folder / "runs.sqlite3").close()  # an empty v0 database
    with RunStore(folder) as store:
        assert store.schema_version == store_mod.SCHEMA_VERSION
        add_run(store, "works")
        assert store.count() == 1


def test_a_version_1_store_gains_the_new_columns_and_keeps_its_runs(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    db = sqlite3.connect(folder / "runs.sqlite3", isolation_level=None)
    store_mod.MIGRATIONS[0](db)  # a store as version 1 left it, with one run
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO runs (run_id, seq, created_at, updated_at, stage, prompt, params, backend) "
        "VALUES ('old', 1, 1.0, 1.0, 'completed', 'kept', '{\"prompt\": \"kept\", \"duration\": 10}', 'piapi')"
    )
    db.close()
    with RunStore(folder) as store:
        old = store.get("old")
        assert old.prompt == "kept" and old.parent_id is None and old.timeline_id is None
        old.update(parent_id="p", timeline_id="t", segment=2, status_word="Succeeded")
        store.save(old)
        again = store.get("old")
        assert (again.parent_id, again.timeline_id, again.segment, again.status_word) == ("p", "t", 2, "Succeeded")


def test_a_version_2_store_gains_the_notebook_and_keeps_its_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    db = sqlite3.connect(folder / "runs.sqlite3", isolation_level=None)
    store_mod.MIGRATIONS[0](db)
    store_mod.MIGRATIONS[1](db)  # a store as version 2 left it, with one run
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO runs (run_id, seq, created_at, updated_at, stage, prompt, params, backend) "
        "VALUES ('old', 1, 1.0, 1.0, 'completed', 'kept', '{\"prompt\": \"kept\", \"duration\": 10}', 'piapi')"
    )
    db.close()
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/lessons/teaching.ipynb")
    with RunStore(folder) as store:
        assert store.schema_version == 3
        assert store.get("old").notebook is None, "a run from before knows no notebook"
        new = add_run(store, "from the lesson")
        assert store.get(new.run_id).notebook == "/work/lessons/teaching.ipynb"
        assert [r.run_id for r in store.list(notebook="/work/lessons/teaching.ipynb")] == [new.run_id]
        assert store.count(notebook="/work/lessons/teaching.ipynb") == 1 and store.count() == 2
        assert store.list(notebook="/work/other.ipynb") == []
    con = sqlite3.connect(folder / "runs.sqlite3")
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE notebook = 'x' ORDER BY seq DESC LIMIT 50"))
    con.close()
    assert "runs_notebook" in plan and "TEMP B-TREE" not in plan  # a notebook's history page walks its index


def test_a_run_records_the_notebook_the_kernel_runs_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert Run.from_input(make_input("p")).notebook is None  # outside a notebook (a script, the CLI)
    monkeypatch.setenv("JPY_SESSION_NAME", "/srv/notebooks/../notebooks/quickstart.ipynb")
    run = Run.from_input(make_input("p"))
    assert run.notebook == "/srv/notebooks/quickstart.ipynb"
    assert Run.from_dict(run.to_dict()).notebook == run.notebook  # one serialisation
    # VS Code tells its kernel the notebook's file in __vsc_ipynb_file__ (it comes first).
    shell = types.SimpleNamespace(user_ns={"__vsc_ipynb_file__": "/home/me/vs/lesson.ipynb"})
    fake_ipython = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert Run.from_input(make_input("p")).notebook == "/home/me/vs/lesson.ipynb"


def test_a_later_migration_keeps_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "store"
    with RunStore(folder) as store:
        run = add_run(store, "kept", stage=RunStage.COMPLETED)

    def v1_to_v2(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE runs ADD COLUMN rating INTEGER")
        db.execute("UPDATE runs SET rating = 5")

    latest = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "MIGRATIONS", [*store_mod.MIGRATIONS, v1_to_v2])
    with RunStore(folder) as store:
        assert store.schema_version == latest + 1
        assert store.get(run.run_id).prompt == "kept"
        assert store._query("SELECT rating FROM runs")[0][0] == 5

    def broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE runs ADD COLUMN half_done INTEGER")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_mod, "MIGRATIONS", [*store_mod.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        RunStore(folder)
    con = sqlite3.connect(folder / "runs.sqlite3")
    assert con.execute("PRAGMA user_version").fetchone()[0] == latest + 1  # rolled back as a whole
    assert "half_done" not in [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    con.close()


# --------------------------------------------------------------------------- images
def test_images_are_stored_once_by_hash_and_loaded_lazily(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    inp = make_input()
    runs = [add_run(store, f"p{i}", inp=inp) for i in range(5)]
    files = list(store.images_dir.iterdir())
    assert files == [store.images_dir / f"{inp.start_image.sha256}.{files[0].suffix[1:]}"]
    assert store.image_path(inp.start_image.sha256) == files[0]
    assert store.put_image(FramepackInput("u", "https://example.com/cat.jpg").start_image) is None  # URLs: not stored

    reads: list[str] = []
    original = RunStore.image_bytes
    monkeypatch.setattr(RunStore, "image_bytes", lambda self, sha: reads.append(sha) or original(self, sha))
    listed = store.list()
    [r.to_dict() for r in listed]
    assert reads == []  # listing never touches image bytes
    rebuilt = store.get(runs[0].run_id).input
    assert reads == [inp.start_image.sha256]
    assert rebuilt.start_image == inp.start_image and rebuilt.start_image.data == inp.start_image.data
    assert rebuilt.prompt == "p0" and rebuilt.duration == inp.duration

    source = store.load_image(inp.start_image.sha256)
    assert (source.width, source.height, source.mime) == (80, 60, inp.start_image.mime)


def test_url_images_round_trip(store: RunStore) -> None:
    inp = FramepackInput("from a url", "https://example.com/a.png", end_image="https://example.com/b.png")
    run = add_run(store, "from a url", inp=inp)
    again = store.get(run.run_id).input
    assert again.start_image.url == "https://example.com/a.png" and again.end_image.url == "https://example.com/b.png"
    assert "https://example.com/a.png" in store.get(run.run_id).code()


def test_a_damaged_image_file_is_reported(store: RunStore) -> None:
    inp = make_input()
    run = add_run(store, "x", inp=inp)
    path = store.image_path(inp.start_image.sha256)
    path.write_bytes(b"not the same bytes")
    from framepack_widgets.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="damaged"):
        store.get(run.run_id).input
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        store.get(run.run_id).input


# --------------------------------------------------------------------------- videos
def _video(tmp: Path, content: bytes) -> Path:
    path = tmp / f"dl-{abs(hash(content))}.mp4"
    path.write_bytes(content)
    return path


def test_add_video_stores_by_content_hash(store: RunStore, tmp_path: Path) -> None:
    first = store.add_video(_video(tmp_path, b"video-one" * 100))
    assert first.parent == store.videos_dir and first.suffix == ".mp4"
    import hashlib

    assert first.stem == hashlib.sha256(b"video-one" * 100).hexdigest()
    again = store.add_video(_video(tmp_path, b"video-one" * 100))
    assert again == first and len(list(store.videos_dir.iterdir())) == 1
    assert not list(tmp_path.glob("dl-*.mp4"))  # moved, not copied
    tmp = store.temp_path("../../escape.mp4")
    assert tmp.parent == store.tmp_dir  # names cannot leave the store


def test_prune_videos_on_request_only(store: RunStore, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    runs = []
    for i in range(5):
        video = store.add_video(_video(tmp_path, f"video {i}".encode() * 5000))
        runs.append(add_run(store, f"r{i}", stage=RunStage.COMPLETED, video_sha=video.stem, video_path=video,
                            finished_at=now - timedelta(days=10 - i)))
    before = store.size_bytes()
    assert before >= 5 * 35000
    with pytest.raises(ValueError, match="keep_last"):
        store.prune_videos()

    preview = store.prune_videos(keep_last=2, dry_run=True)
    assert len(preview) == 3 and len(list(store.videos_dir.iterdir())) == 5  # dry run: nothing removed

    removed = store.prune_videos(keep_last=2)
    assert sorted(item["run_ids"][0] for item in removed) == sorted(r.run_id for r in runs[:3])
    assert all(item["bytes"] > 0 and not Path(item["path"]).exists() for item in removed)
    assert store.size_bytes() < before
    old = store.get(runs[0].run_id)
    assert old.video_path is None and old.stage is RunStage.COMPLETED and "prune_videos" in old.hint
    assert store.get(runs[4].run_id).video_path is not None

    removed = store.prune_videos(older_than=timedelta(days=6, hours=12))  # r3 finished 7 days ago, r4 6 days ago
    assert [item["run_ids"] for item in removed] == [[runs[3].run_id]]
    assert store.prune_videos(keep_last=5) == []  # nothing left to prune: says so


def test_prune_leaves_fresh_orphans_alone(store: RunStore, tmp_path: Path) -> None:
    orphan = store.add_video(_video(tmp_path, b"downloaded, not yet recorded" * 100))
    assert store.prune_videos(keep_last=0) == []
    old = time.time() - 2 * store_mod.ORPHAN_GRACE_SECONDS
    os.utime(orphan, (old, old))
    removed = store.prune_videos(keep_last=0)
    assert [item["path"] for item in removed] == [str(orphan)] and removed[0]["run_ids"] == []


# --------------------------------------------------------------------------- secrets
async def test_no_key_anywhere_in_the_store(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", KEY)
    client = MiniClient()
    runner = Runner(client, store)
    done = [runner.start(make_input(f"run {i}")) for i in range(3)]
    await asyncio.gather(*(r.wait() for r in done))
    assert all(r.stage is RunStage.COMPLETED for r in done)
    for r in done:
        assert KEY not in r.code() and KEY not in json.dumps(r.to_dict()) and KEY not in repr(r)
    store.close()
    key = KEY.encode()
    for path in store.folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key not in data, path
            assert KEY.encode("utf-16-le") not in data, path


# --------------------------------------------------------------------------- unusable folders, damage, permissions
def test_a_home_that_is_a_file_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("FRAMEPACK_HOME", str(home))
    with pytest.raises(store_mod.StoreError, match="FRAMEPACK_HOME") as info:
        RunStore()
    assert str(home) in str(info.value) and "is a file" in str(info.value)
    assert home.read_text() == "not a folder"  # left as it was


def test_a_folder_that_cannot_be_created_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # (the tests run as root, who may write anywhere)
    with pytest.raises(store_mod.StoreError, match="permission denied") as info:
        RunStore(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "FRAMEPACK_HOME" in str(info.value)
    with pytest.raises(store_mod.StoreError, match="Cannot create"):
        RunStore(Path("/proc/framepack-test/store"))  # a real failure, not a permission one


def test_a_damaged_database_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with RunStore(folder) as store:
        add_run(store, "kept on disk")
    damaged = b"this is not a database " * 100
    (folder / "runs.sqlite3").write_bytes(damaged)
    for suffix in ("-wal", "-shm"):
        (folder / f"runs.sqlite3{suffix}").unlink(missing_ok=True)
    with RunStore(folder) as store:
        assert store.count() == 0 and store.notice is not None
        assert "moved to runs.sqlite3.damaged-" in store.notice and "not deleted" in store.notice
        [kept] = folder.glob("runs.sqlite3.damaged-*")
        assert kept.read_bytes() == damaged  # never deleted
        assert len(list(store.images_dir.iterdir())) == 1  # the images are untouched
        add_run(store, "a new history")
        assert store.count() == 1
    with RunStore(folder) as store:
        assert store.notice is None  # said once, when it happened


async def test_the_widget_shows_that_a_damaged_store_was_moved_aside(tmp_path: Path) -> None:
    import httpx

    from framepack_widgets import FramepackWidget
    from framepack_widgets.client import AsyncClient

    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "runs.sqlite3").write_bytes(b"garbage" * 500)
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    client = AsyncClient("k", base_url="http://127.0.0.1:9", http_client=http)
    w = FramepackWidget(client, store=RunStore(folder))
    assert "damaged" in w._notice and "kept, not deleted" in w._notice
    w.close()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_store_is_private_to_its_user(tmp_path: Path, umask: int, mp4_bytes_path: Path) -> None:
    old = os.umask(umask)
    try:
        folder = tmp_path / "store"
        with RunStore(folder) as store:
            add_run(store, "private")
            video = store.add_video(mp4_bytes_path)
            files = [store.db_path, video, *store.images_dir.iterdir()]
            folders = [folder, store.images_dir, store.videos_dir, store.tmp_dir]
            assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
            assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
            assert oct(Path(f"{store.db_path}-wal").stat().st_mode & 0o777) == "0o600"
    finally:
        os.umask(old)


def test_an_old_world_readable_store_is_made_private_when_opened(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with RunStore(folder):
        pass
    os.chmod(folder, 0o755)
    os.chmod(folder / "runs.sqlite3", 0o644)
    with RunStore(folder):
        assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "runs.sqlite3").stat().st_mode & 0o777 == 0o600


@pytest.fixture
def mp4_bytes_path(tmp_path: Path) -> Path:
    path = tmp_path / "download.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    return path
