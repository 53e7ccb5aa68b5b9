"""The class's store, on SQLite and on PostgreSQL alike: reservations, idempotency, money."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from framepack_widgets.service._databases import DatabaseError, describe, open_database
from framepack_widgets.service._money import micros, price_micros
from framepack_widgets.service._schema import SCHEMA_VERSION
from framepack_widgets.service._store import Store

PRICE = price_micros(10)  # $0.30
BUDGET = micros(0.9)


def _reserve(store: Store, owner: str = "alice", key: str | None = None, *, max_running: int = 10,
             sha: str = "sha", budget: int = BUDGET):
    return store.reserve(owner=owner, idempotency_key=key, request_sha=sha, price_micros=PRICE, duration=10,
                         prompt="p", negative_prompt="", default_budget_micros=budget, max_running=max_running)


@pytest.fixture
def store(db_url: str):
    opened = Store.open(db_url)
    yield opened
    opened.close()


def test_migrations_apply_once_and_reopen(db_url: str) -> None:
    first = Store.open(db_url)
    assert first.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert first.secret("video_secret") == first.secret("video_secret")
    secret = first.secret("video_secret")
    first.close()
    again = Store.open(db_url)  # the same database opened again: nothing re-applied, the secret kept
    assert again.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert again.secret("video_secret") == secret
    again.close()


def test_a_newer_schema_is_refused(db_url: str) -> None:
    store = Store.open(db_url)
    store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(DatabaseError, match="newer"):
        open_database(db_url)


def test_the_budget_is_exact_and_refusals_say_what_is_left(store: Store) -> None:
    kinds = [_reserve(store).kind for _ in range(3)]
    assert kinds == ["new"] * 3  # $0.90 is three $0.30 tasks, exactly (no float crumbs)
    refused = _reserve(store)
    assert (refused.kind, refused.left_micros, refused.budget_micros) == ("over_budget", 0, BUDGET)
    summary = store.account("alice", BUDGET)
    assert (summary.spent_micros, summary.reserved_micros, summary.running) == (0, 3 * PRICE, 3)


def test_concurrent_reservations_never_pass_the_budget(store: Store) -> None:
    barrier = threading.Barrier(12)

    def one(i: int) -> str:
        barrier.wait()
        return _reserve(store, "carol", f"k{i}").kind

    with ThreadPoolExecutor(12) as pool:
        kinds = list(pool.map(one, range(12)))
    assert kinds.count("new") == 3 and kinds.count("over_budget") == 9
    assert store.account("carol", BUDGET).reserved_micros == 3 * PRICE


def test_concurrent_repeats_of_one_key_make_one_create(store: Store) -> None:
    barrier = threading.Barrier(8)

    def one(_: int):
        barrier.wait()
        return _reserve(store, "dave", "same-key")

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(one, range(8)))
    assert sorted(r.kind for r in found) == ["existing"] * 7 + ["new"]
    assert len({r.row.id for r in found}) == 1
    assert store.account("dave", BUDGET).reserved_micros == PRICE


def test_keys_are_per_student_and_checked_before_the_pause(store: Store) -> None:
    first = _reserve(store, "alice", "k")
    assert _reserve(store, "bob", "k").kind == "new"  # another student's key is another create
    store.set_paused(True)
    again = _reserve(store, "alice", "k")
    assert (again.kind, again.row.id) == ("existing", first.row.id)  # a retry of what was accepted
    assert _reserve(store, "alice", "other").kind == "paused"
    store.set_paused(False)
    assert _reserve(store, "alice", "other").kind == "new"


def test_the_running_cap(store: Store) -> None:
    assert [_reserve(store, max_running=2).kind for _ in range(3)] == ["new", "new", "busy"]


def test_outcomes_charge_release_or_keep(store: Store) -> None:
    done = _reserve(store, key="a").row
    failed = _reserve(store, key="b").row
    unknown = _reserve(store, key="c").row
    store.created(done.id, "task-done", "pending", {"task_id": "task-done"})
    store.created(failed.id, "task-failed", "pending", {"task_id": "task-failed"})
    store.unknown(unknown.id, "the connection broke")
    store.observed("task-done", "completed", {"status": "completed"}, "completed")
    store.observed("task-done", "completed", {"status": "completed"}, "completed")  # a second look charges nothing
    store.observed("task-failed", "failed", {"status": "failed"}, "failed", "bad image")
    summary = store.account("alice", BUDGET)
    assert (summary.spent_micros, summary.reserved_micros, summary.unknown) == (PRICE, PRICE, 1)
    assert store.task("task-failed").error == "bad image"
    refused = _reserve(store, key="d").row
    store.refused(refused.id, {"status": 400, "message": "no"})
    assert store.row(refused.id).answer == {"status": 400, "message": "no"}
    assert _reserve(store, key="d").kind == "new"  # a refused create frees its key for a new try


def test_a_create_interrupted_by_a_restart_becomes_unknown(store: Store) -> None:
    row = _reserve(store, key="a").row
    assert [r.id for r in store.interrupted()] == [row.id]
    assert store.row(row.id).state == "unknown" and store.account("alice", BUDGET).reserved_micros == PRICE


def test_budgets_per_student_and_per_class(store: Store) -> None:
    _reserve(store, "alice")
    assert store.account("alice", BUDGET).budget_micros == BUDGET
    store.set_class_budget(micros(2))
    assert store.account("alice", BUDGET).budget_micros == micros(2)
    store.set_budget("alice", micros(0.3))
    summary = store.account("alice", BUDGET)
    assert (summary.budget_micros, summary.own_budget, summary.left_micros) == (micros(0.3), True, 0)
    assert _reserve(store, "alice").kind == "over_budget"
    store.set_budget("bob", micros(5))  # a student who never asked anything yet
    names = {s.name: s for s in store.students(BUDGET)}
    assert names["bob"].budget_micros == micros(5) and names["bob"].spent_micros == 0
    store.set_budget("alice", None)
    assert store.account("alice", BUDGET).budget_micros == micros(2)


def test_share_flags_and_lists(store: Store) -> None:
    row = _reserve(store).row
    store.created(row.id, "t1", "pending", None)
    assert store.set_shared("t1", True).shared
    assert [r.task_id for r in store.tasks(shared=True)] == ["t1"]
    assert store.tasks(owner="bob") == []
    assert [r.task_id for r in store.tasks(states=("active",))] == ["t1"]


def test_database_urls_and_messages(tmp_path) -> None:
    assert describe("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"
    store = Store.open(f"sqlite:///{tmp_path}/x.sqlite")
    assert store.kind == "sqlite" and (tmp_path / "x.sqlite").is_file()
    store.close()
    with pytest.raises(DatabaseError, match="PostgreSQL URL"):
        open_database("mysql://somewhere/db")
    with pytest.raises(DatabaseError, match="cannot reach") as caught:
        open_database("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(caught.value) and "u:***@" in str(caught.value)  # never the password
