"""The widget's parts on their own, without a widget: each is built from only what it needs
(a runner, a store, another part, an outbox), which is what keeps the widget package free
of a call circle. The widget's own tests drive them through the widget and the browser's
messages; these show that nothing else is needed.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from framepack_widgets.errors import InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, Runner, RunStage, RunStore
from framepack_widgets.widget._comparison import Comparison
from framepack_widgets.widget._index import RunIndex
from framepack_widgets.widget._outbox import Notice, Outbox
from framepack_widgets.widget._slots import ImageSlots


def jpeg(color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(out, "JPEG")
    return out.getvalue()


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], list[bytes] | None]] = []

    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None) -> None:
        self.messages.append((content, buffers))


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "store") as s:
        yield s


def stored_runs(store: RunStore, n: int) -> list[Run]:
    inp = FramepackInput("stored prompt", jpeg(), duration=10)
    store.put_image(inp.start_image)
    runs = []
    for i in range(n):
        run = Run.from_input(inp.replace(prompt=f"stored prompt {i}"), backend="simulator")
        run.update(stage=RunStage.FAILED, error="old")
        store.save(run)
        runs.append(run)
    return runs


def test_image_slots_need_only_an_outbox() -> None:
    sent = Sent()
    slots = ImageSlots(Outbox(sent))
    slots.set("start", jpeg(), name="cabin.jpg")
    assert slots.start_image_info["name"] == "cabin.jpg" and slots.get("start") is not None
    [(content, buffers)] = sent.messages
    assert content == {"type": "image", "slot": "start", "name": "cabin.jpg", "mime": "image/jpeg"} and buffers
    with pytest.raises(InvalidInputError):
        slots.set("end", b"not an image")
    assert slots.input_error and slots.get("end") is None
    slots.edited()  # a start image is in: the complaint goes once the person edits
    assert slots.input_error == ""
    slots.set("start", jpeg((0, 0, 200)), continues="run-1")
    inp = FramepackInput("go on", slots.get("start"))
    assert slots.continues(inp) == "run-1"
    slots.set("start", None)
    assert slots.start_image_info is None and sent.messages[-1][0] == {"type": "image", "slot": "start", "clear": True}


def test_the_run_index_needs_only_a_runner_and_a_store(store: RunStore) -> None:
    runs = stored_runs(store, 3)
    changed: list[None] = []
    index = RunIndex(Runner(SimpleNamespace(is_simulator=True), store), store, backend="simulator",
                     changed=lambda: changed.append(None))
    index.load()
    assert [card["id"] for card in index.history] == [r.run_id for r in reversed(runs)]
    assert index.history_total == 3 and index.status == {}, "no stored run becomes the current one"
    index.make_current(runs[0])
    assert index.status["run_id"] == runs[0].run_id and changed
    assert index.lookup(runs[0].run_id).run_id == runs[0].run_id and index.lookup("no-such-run") is None
    page = index.page(before=index.history[-1]["seq"])
    assert page == {"total": 3, "runs": []}
    with pytest.raises(InvalidInputError, match="no-such-run"):
        index.resolve(["no-such-run"])


def test_the_comparison_needs_only_the_run_index(store: RunStore) -> None:
    runs = stored_runs(store, 2)
    index = RunIndex(Runner(SimpleNamespace(is_simulator=True), store), store, backend="simulator")
    comparison = Comparison(index)
    comparison.show([r.run_id for r in runs], sweep_id="sweep-1")
    assert comparison.selected == [r.run_id for r in runs] and comparison.sweep_id == "sweep-1"
    assert [r.run_id for r in comparison.runs()] == [r.run_id for r in runs]
    with pytest.raises(InvalidInputError, match="2 to 4"):
        comparison.show([runs[0].run_id])
    comparison.show([])
    assert comparison.comparison == {}


def test_the_notice_line() -> None:
    notice = Notice()
    notice.say("Saved.")
    assert notice.text == "Saved."
    notice.clear()
    assert notice.text == ""
