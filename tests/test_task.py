"""The envelope parser: every shape the reference documents, and the unverified ones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from framepack_widgets.task import Task, TaskStatus, find_video_url, parse_task, parse_time

ZERO = "0001-01-01T00:00:00Z"


def envelope(**data: object) -> dict:
    base: dict = {
        "task_id": "8718d5c1-aaaa",
        "model": "Qubico/framepack",
        "task_type": "img2video",
        "status": "pending",
        "config": {"service_mode": "", "webhook_config": {"endpoint": "", "secret": ""}},
        "input": {},
        "output": None,
        "meta": {"created_at": "2025-06-30T07:11:30.719851187Z", "started_at": ZERO, "ended_at": ZERO},
        "detail": None,
        "logs": [],
        "error": {"code": 0, "raw_message": "", "message": "", "detail": None},
    }
    base.update(data)
    return {"code": 200, "message": "success", "data": base}


def test_pending_envelope_with_zero_times_and_null_output() -> None:
    task = parse_task(envelope())
    assert task.task_id == "8718d5c1-aaaa"
    assert task.status is TaskStatus.PENDING
    assert task.video_url is None
    assert task.started_at is None and task.ended_at is None
    assert task.created_at == datetime(2025, 6, 30, 7, 11, 30, 719851, tzinfo=timezone.utc)
    assert task.error is None
    assert not task.is_terminal


def test_completed_envelope_from_the_reference() -> None:
    task = parse_task(
        envelope(
            status="completed",
            output={"video_url": "https://img.theapi.app/temp/x.mp4"},
            meta={
                "created_at": "2025-06-30T07:11:30.719851187Z",
                "started_at": "2025-06-30T07:11:31.89Z",
                "ended_at": "2025-06-30T07:12:03.38Z",
                "usage": {"type": "point", "frozen": 0, "consume": 3000000},
                "is_using_private_pool": False,
            },
        )
    )
    assert task.status is TaskStatus.COMPLETED and task.is_terminal
    assert task.video_url == "https://img.theapi.app/temp/x.mp4"
    assert task.consume == 3000000
    assert task.ended_at - task.started_at == timedelta(seconds=31, microseconds=490000)
    assert task.raw["model"] == "Qubico/framepack"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pending", TaskStatus.PENDING),
        ("Processing", TaskStatus.PROCESSING),
        ("COMPLETED", TaskStatus.COMPLETED),
        ("Failed", TaskStatus.FAILED),
        ("staged", TaskStatus.STAGED),
        ("running", TaskStatus.RUNNING),
        ("canceled", TaskStatus.CANCELLED),
        ("cancelled", TaskStatus.CANCELLED),
        ("teleporting", TaskStatus.UNKNOWN),
        ("", TaskStatus.UNKNOWN),
        (None, TaskStatus.UNKNOWN),
        (42, TaskStatus.UNKNOWN),
    ],
)
def test_status_is_case_insensitive_and_never_crashes(text: object, expected: TaskStatus) -> None:
    assert parse_task(envelope(status=text)).status is expected


def test_unknown_status_is_not_terminal() -> None:
    assert not TaskStatus.UNKNOWN.is_terminal
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    }


@pytest.mark.parametrize(
    ("output", "url"),
    [
        (None, None),
        ({"video_url": ""}, None),
        ({"video_url": "https://a/v.mp4"}, "https://a/v.mp4"),
        ({"video": "https://b/v.mp4"}, "https://b/v.mp4"),
        ({"video": {"url": "https://c/v.mp4"}}, "https://c/v.mp4"),
        (
            {"works": [{"video": {"resource_without_watermark": "https://d/clean.mp4", "resource": "https://d/wm.mp4"}}]},
            "https://d/clean.mp4",
        ),
        ({"works": [{"video": {"resource_without_watermark": "", "resource": "https://e/wm.mp4"}}]}, "https://e/wm.mp4"),
        # documented order: video_url first, even when others are present
        ({"video_url": "https://first/v.mp4", "video": "https://second/v.mp4"}, "https://first/v.mp4"),
        # blank or non-http values are skipped in favour of the next candidate
        ({"video_url": "", "video": {"url": "https://f/v.mp4"}}, "https://f/v.mp4"),
        ({"video_url": "javascript:alert(1)"}, None),
        ({"video_url": "ftp://host/v.mp4"}, None),
        ("not a mapping", None),
    ],
)
def test_video_url_lookup_order(output: object, url: str | None) -> None:
    assert find_video_url(output) == url


def test_timestamps_with_offsets_and_nanoseconds() -> None:
    assert parse_time("2025-06-30T15:12:03.38+08:00") == datetime(2025, 6, 30, 7, 12, 3, 380000, tzinfo=timezone.utc)
    assert parse_time("2025-06-30T07:11:30.719851187Z").microsecond == 719851
    assert parse_time("2025-06-30T07:11:30Z").tzinfo is not None
    assert parse_time(ZERO) is None
    assert parse_time("0001-01-01T00:00:00+00:00") is None
    assert parse_time("") is None and parse_time(None) is None and parse_time("yesterday") is None


def test_processing_percent_and_logs_are_kept() -> None:
    task = parse_task(
        envelope(status="processing", output={"video_url": "", "percent": 42}, logs=["loading model", {"message": "step 3/9"}])
    )
    assert task.percent == 42.0
    assert task.logs == ("loading model", "step 3/9")


@pytest.mark.parametrize("value", ["abc", None, True, float("nan")])
def test_bad_percent_is_ignored(value: object) -> None:
    assert parse_task(envelope(status="processing", output={"percent": value})).percent is None


def test_percent_is_clamped() -> None:
    assert parse_task(envelope(output={"percent": 140})).percent == 100.0


def test_failed_task_keeps_the_error_message() -> None:
    task = parse_task(
        envelope(status="failed", error={"code": 10000, "raw_message": "cuda oom", "message": "GPU out of memory", "detail": None})
    )
    assert task.status is TaskStatus.FAILED
    assert task.error == "GPU out of memory"
    only_raw = parse_task(envelope(status="failed", error={"code": 10000, "raw_message": "cuda oom", "message": ""}))
    assert only_raw.error == "cuda oom"
    only_code = parse_task(envelope(status="failed", error={"code": 10000, "raw_message": "", "message": ""}))
    assert only_code.error == "error code 10000"


def test_code_zero_envelope_and_bare_data() -> None:
    env = envelope(status="pending")
    env["code"] = 0
    assert parse_task(env).status is TaskStatus.PENDING
    assert parse_task(env["data"]).task_id == "8718d5c1-aaaa"


@pytest.mark.parametrize("bad", [{"code": 200, "data": None}, {"code": 200, "data": {"status": "pending"}}, [], "x"])
def test_no_task_in_the_response_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_task(bad)  # type: ignore[arg-type]


def test_changed_since_tracks_what_on_update_reports() -> None:
    a = parse_task(envelope(status="processing", output={"percent": 10}))
    same = parse_task(envelope(status="processing", output={"percent": 10}))
    more = parse_task(envelope(status="processing", output={"percent": 20}))
    logged = parse_task(envelope(status="processing", output={"percent": 10}, logs=["x"]))
    assert a.changed_since(None)
    assert not same.changed_since(a)
    assert more.changed_since(a) and logged.changed_since(a)


def test_task_is_immutable() -> None:
    task = parse_task(envelope())
    with pytest.raises(Exception):
        task.status = TaskStatus.FAILED  # type: ignore[misc]
    assert isinstance(task, Task)


def test_null_percent_falls_back_to_progress_and_string_errors_are_kept() -> None:
    assert parse_task(envelope(status="processing", output={"percent": None, "progress": 30})).percent == 30.0
    assert parse_task(envelope(status="failed", error="content policy violation")).error == "content policy violation"


def test_raw_keeps_the_envelope_but_not_the_echoed_image() -> None:
    image = "A" * 200_000
    task = parse_task(envelope(input={"prompt": "zoom in", "start_image": image, "duration": 10}))
    assert task.raw["input"]["prompt"] == "zoom in" and task.raw["input"]["duration"] == 10
    assert task.raw["input"]["start_image"] == "<200000 characters>"
    assert task.raw["model"] == "Qubico/framepack"
