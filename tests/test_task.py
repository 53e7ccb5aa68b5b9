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


# --------------------------------------------------------------------------- every documented shape

V = "https://cdn.example/v.mp4"


@pytest.mark.parametrize(
    ("output", "url"),
    [
        ({"video": V}, V),
        ({"video": {"url": V, "width": 1360}}, V),
        ({"video": {"resource": "https://x/wm.mp4", "resource_without_watermark": V}}, V),
        ({"video": {"resource": V, "resource_without_watermark": ""}}, V),
        ({"video": [V, "https://x/second.mp4"]}, V),
        ({"video": [{"url": V}]}, V),
        ({"video_urls": [V]}, V),
        ({"video_urls": ["", V]}, V),
        # Kling: the cover (an image) comes first in each work; the video is what counts
        ({"works": [{"cover": {"resource": "https://x/cover.png"},
                     "video": {"resource": "https://x/wm.mp4", "resource_without_watermark": V}}]}, V),
        ({"works": [{"resource": {"resource": "https://x/wm.mp4", "resourceWithoutWatermark": V}}]}, V),
        ({"works": [{"resource": {"resource": V}}]}, V),
        ({"works": ["junk", {"video": None}, {"video": {"resource": V}}]}, V),
        # the last resort: walk the tree, a video-looking URL before any other
        ({"result": {"files": [{"thumb": "https://x/t.jpg"}, {"href": V}]}}, V),
        ({"status": 99, "assets": {"url": "https://x/render?id=7"}}, "https://x/render?id=7"),
        ({"video_url": "", "percent": 100}, None),
        ({}, None),
    ],
)
def test_every_documented_place_for_the_video(output: object, url: str | None) -> None:
    assert find_video_url(output) == url
    task = parse_task(envelope(status="completed", output=output))
    assert task.video_url == url


def test_a_running_task_never_takes_a_walked_url_for_its_video() -> None:
    output = {"video_url": "", "cover_url": "https://x/cover.png", "prompt_img_url": "https://x/in.jpg"}
    assert parse_task(envelope(status="processing", output=output)).video_url is None
    assert find_video_url(output, walk=False) is None


def test_the_walk_is_bounded() -> None:
    deep: dict = {"video_url": ""}
    node = deep
    for _ in range(5000):
        node["next"] = {"x": 1}
        node = node["next"]
    node["url"] = V
    assert find_video_url(deep) is None  # too deep to look at: not a stall


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Completed", TaskStatus.COMPLETED), ("completed", TaskStatus.COMPLETED), ("success", TaskStatus.COMPLETED),
        ("SUCCEEDED", TaskStatus.COMPLETED), ("finished", TaskStatus.COMPLETED), ("error", TaskStatus.FAILED),
        ("Failed", TaskStatus.FAILED), ("queued", TaskStatus.PENDING), ("starting", TaskStatus.PENDING),
        ("retry", TaskStatus.PENDING), ("Staged", TaskStatus.STAGED), ("Pending", TaskStatus.PENDING),
        ("canceled", TaskStatus.CANCELLED), ("Cancelled", TaskStatus.CANCELLED), (" processing ", TaskStatus.PROCESSING),
    ],
)
def test_status_words_other_clients_see(word: str, status: TaskStatus) -> None:
    task = parse_task(envelope(status=word))
    assert task.status is status
    assert task.status_word == word  # the API's own word is kept, as it came


def test_not_started_words_are_not_terminal_and_final_words_are() -> None:
    for word in ("queued", "starting", "staged", "retry"):
        assert not parse_task(envelope(status=word)).is_terminal
    for word in ("canceled", "cancelled", "success", "error"):
        assert parse_task(envelope(status=word)).is_terminal


def test_an_unknown_status_with_a_video_is_completed_without_one_it_is_unknown() -> None:
    done = parse_task(envelope(status="rendered", output={"video": {"url": V}}))
    assert done.status is TaskStatus.COMPLETED and done.video_url == V and done.status_word == "rendered"
    walked = parse_task(envelope(status="delivered", output={"files": [{"href": V}]}))
    assert walked.status is TaskStatus.COMPLETED
    # an image anywhere in the output is not proof that the video is there
    image_only = parse_task(envelope(status="generating", output={"cover": "https://x/c.png"}))
    assert image_only.status is TaskStatus.UNKNOWN and image_only.video_url is None
    running = parse_task(envelope(status="generating", output=None))
    assert running.status is TaskStatus.UNKNOWN and not running.is_terminal and running.status_word == "generating"
    assert parse_task(envelope(status="")).status is TaskStatus.UNKNOWN  # AI Hug's create reply: status ""


def test_a_changed_status_word_is_a_change() -> None:
    a = parse_task(envelope(status="generating"))
    b = parse_task(envelope(status="encoding"))
    assert a.status is b.status is TaskStatus.UNKNOWN and b.changed_since(a)


def test_meta_completed_at_empty_strings_and_zero_times() -> None:
    task = parse_task(envelope(status="Completed", output={"video_url": V},
                               meta={"created_at": "2025-06-30T07:11:30Z", "started_at": "",
                                     "completed_at": "2025-06-30T07:12:03.38Z"}))
    assert task.started_at is None
    assert task.ended_at == datetime(2025, 6, 30, 7, 12, 3, 380000, tzinfo=timezone.utc)
    zero = parse_task(envelope(meta={"created_at": "", "started_at": ZERO, "ended_at": ZERO, "completed_at": ZERO}))
    assert zero.created_at is zero.started_at is zero.ended_at is None
    both = parse_task(envelope(meta={"ended_at": "2025-06-30T07:12:00Z", "completed_at": "2025-06-30T07:13:00Z"}))
    assert both.ended_at == datetime(2025, 6, 30, 7, 12, tzinfo=timezone.utc)  # ended_at first
    top = parse_task(envelope(meta=None, created_at="2019-08-24T14:15:22Z"))  # the bare create reply keeps it on top
    assert top.created_at == datetime(2019, 8, 24, 14, 15, 22, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("usage", "consume", "frozen"),
    [
        ({"consume": 3000000, "frozen": 0}, 3000000, 0),
        ({"consume": "3000000", "frozen": "2000000"}, 3000000, 2000000),
        ({"consume": 2.5, "frozen": "1e6"}, 2.5, 1000000),
        ({"consume": "", "frozen": None}, None, None),
        ({"consume": "lots", "frozen": True}, None, None),
        ({"consume": float("nan")}, None, None),
    ],
)
def test_usage_as_numbers_or_numeric_strings(usage: dict, consume: object, frozen: object) -> None:
    task = parse_task(envelope(meta={"usage": {"type": "point", **usage}}))
    assert task.consume == consume and task.frozen == frozen


def test_error_from_raw_message_and_placeholders_on_tasks_that_did_not_fail() -> None:
    raw = parse_task(envelope(status="failed", error={"code": 10000, "message": "", "raw_message": "nsfw detected"}))
    assert raw.error == "nsfw detected"
    for status in ("pending", "processing", "completed"):
        placeholder = parse_task(envelope(status=status, output={"video_url": V},
                                          error={"code": 10000, "raw_message": "", "message": ""}))
        assert placeholder.error is None  # a code with no message on a task that did not fail: not an error
    assert parse_task(envelope(status="error", error={"code": 500})).error == "error code 500"
    assert parse_task(envelope(status="failed", error={"code": 0, "message": ""})).error is None


@pytest.mark.parametrize(
    ("logs", "lines"),
    [
        (None, ()),
        ([], ()),
        (["a", "b"], ("a", "b")),
        ([{}], ()),  # the unified schema's example
        ([{"message": "m"}, {"msg": "n"}, {"log": "o"}, {"text": "p"}, {"content": "q"}], ("m", "n", "o", "p", "q")),
        ([{"level": "info"}], ("{'level': 'info'}",)),
        ([None, 3], ("3",)),
        ("not a list", ()),
    ],
)
def test_logs_null_strings_or_objects(logs: object, lines: tuple) -> None:
    assert parse_task(envelope(status="processing", logs=logs)).logs == lines


def test_bare_create_reply_from_the_framepack_page() -> None:
    task = parse_task({"task_id": "abc", "status": "pending", "created_at": "2019-08-24T14:15:22Z"})
    assert task.task_id == "abc" and task.status is TaskStatus.PENDING and task.created_at is not None


# --------------------------------------------------------------------------- issue 18: words that end a task
@pytest.mark.parametrize("word, status", [
    ("complete", TaskStatus.COMPLETED), ("Complete", TaskStatus.COMPLETED),
    ("failure", TaskStatus.FAILED), ("rejected", TaskStatus.FAILED), ("REJECTED", TaskStatus.FAILED),
])
def test_complete_failure_and_rejected_are_final(word: str, status: TaskStatus) -> None:
    task = parse_task(envelope(status=word))
    assert task.status is status and task.is_terminal and task.status_word == word


def test_an_unknown_word_with_an_error_message_is_a_failure() -> None:
    task = parse_task(envelope(status="moderated", error={"code": 10001, "message": "prompt refused by moderation"}))
    assert task.status is TaskStatus.FAILED and task.error == "prompt refused by moderation"
    calm = parse_task(envelope(status="moderated"))  # the placeholder error of a task that did not fail
    assert calm.status is TaskStatus.UNKNOWN and not calm.is_terminal


@pytest.mark.parametrize("task_id", ["a" * 70_000, "t\x00", "t\x1b[31m", "a/b", "a\\b", "t 1", "t\n1", "..", "", "é"])
def test_an_unusable_task_id_is_refused_where_a_task_is_made(task_id: str) -> None:
    from framepack_widgets.errors import FramepackError

    with pytest.raises(ValueError) as parsed:
        parse_task(envelope(task_id=task_id))
    assert isinstance(parsed.value, FramepackError) and "task id" in str(parsed.value)
    assert len(str(parsed.value)) < 400  # the message shows a short, printable part of it
    with pytest.raises(FramepackError, match="task id"):
        Task.from_data({"task_id": task_id, "status": "pending"})  # a webhook's data too


@pytest.mark.parametrize("task_id", ["8718d5c1-aaaa-4bbb-8ccc-0123456789ab", "t1", "task_7.b:c", "A" * 128])
def test_usual_task_ids_are_fine(task_id: str) -> None:
    assert parse_task(envelope(task_id=task_id)).task_id == task_id
