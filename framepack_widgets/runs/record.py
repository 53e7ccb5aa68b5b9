"""`Run`: one generation as a person sees it, as a plain record with one serialisation.

The fields are what the run *is* (its input, task id, stage, status history, local video);
`to_dict()` / `from_dict()` is the only way a run becomes data, and the store, the widget,
export and the command line all read that dict. The live work (sending, polling,
downloading, cancelling, resuming) belongs to the `Runner` linked in `run.runner`; the
convenience methods here (`await run`, `rerun`, `extend`, `cancel`) only hand over to it,
as `last_frame()` (`frames`), `show()` and `code()` (`present`) do to their modules.

Links: `link()` is the one method that sets a run's `store` and `runner` (the Runner calls it
for every run it hands out, the store for every run it reads). Changes: `observe()` is the
run's one change channel; the runner calls `notify()` after every saved change, and the
widget, sweeps, timelines and the Runner's own `observe()` all listen there.

Light to import: PIL, numpy, av and IPython load only inside the methods that need them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._environment import notebook_path
from .._observers import Observers
from ..constants import cost_usd
from ..errors import FileMissingError, FramepackError, InvalidInputError, UsageError
from ..task import Task, TaskStatus
from . import frames, present
from .stages import UNFINISHED_STAGES, RunEvent, RunStage, as_time, stage_for_status, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..inputs import FramepackInput, ImageSource

__all__ = ["DrivenElsewhereError", "Run", "RunEvent", "RunStage", "RunNotAttachedError", "UNFINISHED_STAGES"]

Observer = Callable[["Run"], Any]


class Driver(Protocol):
    """What a run asks of the `Runner` linked to it."""

    def start(self, input: "FramepackInput", *, parent_id: str | None = None) -> "Run": ...

    def cancel(self, run: "Run") -> None: ...

    async def wait(self, run: "Run") -> "Run": ...


class ImageStore(Protocol):
    """What a run asks of the `RunStore` it was read from: its input images and its history."""

    def image_source(self, info: Mapping[str, Any]) -> "ImageSource": ...

    def image_path(self, sha256: str) -> Path | None: ...

    def history(self, run_id: str) -> "list[RunEvent]": ...


class RunNotAttachedError(FramepackError, RuntimeError):
    """The run has no Runner to act for it (e.g. it was read straight from a RunStore), or
    nothing drives it any more; the message says how to re-attach it."""


class DrivenElsewhereError(FramepackError, RuntimeError):
    """Another kernel drives the run: act on it there (or after that kernel stops, when this
    one takes the run over)."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


#: The record's own fields, in `to_dict()` order; everything else in the dict is derived.
_TIMES = ("created_at", "updated_at", "submitted_at", "finished_at")


@dataclass(eq=False, repr=False)
class Run:
    """One generation: its input, task id, status history, cost and local video.

    A record: `to_dict()` is its one serialisation and `from_dict()` reads it back. It is
    updated in place by the `Runner` that drives it (treat the fields as read-only), can
    be observed (`observe`), and awaited (`await run` returns it once it is final).
    """

    run_id: str
    params: dict[str, Any]  # the input as FramepackInput.to_params() gives it: JSON, no bytes
    backend: str = "piapi"  # "piapi" or "simulator"
    sweep_id: str | None = None
    parent_id: str | None = None  # the run this one continues from its last frame (extend)
    timeline_id: str | None = None  # the timeline this run is a segment of, and which one
    segment: int | None = None
    #: The notebook the run was started from (its path, as the kernel's front end says), else None.
    notebook: str | None = None
    seq: int | None = None  # the run's number in its store (#1, #2, ...: newest = largest), set when first saved
    stage: RunStage = RunStage.QUEUED
    status: TaskStatus | None = None
    status_word: str | None = None  # the API's own word for the status, as it came
    task_id: str | None = None
    percent: float | None = None
    logs: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    video_sha: str | None = None
    video_url: str | None = None
    video_path: Path | None = None
    #: The status history; None until first read for runs listed from a store (lists
    #: of many runs read no history; `history` loads it on first use).
    _history: list[RunEvent] | None = field(default=None, repr=False)
    #: The validated input, when the run was made from one (else rebuilt on first use).
    _input: "FramepackInput | None" = field(default=None, repr=False, compare=False)
    #: Where the run is kept (its images are read from there), and who drives it: links,
    #: not part of the record, set by `link()`.
    store: ImageStore | None = field(default=None, compare=False)
    runner: Driver | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._last_frame: Image.Image | None = None
        self._observers: Observers[Run] = Observers()

    @classmethod
    def from_input(
        cls,
        input: "FramepackInput",
        *,
        backend: str = "piapi",
        sweep_id: str | None = None,
        run_id: str | None = None,
        parent_id: str | None = None,
        timeline_id: str | None = None,
        segment: int | None = None,
    ) -> "Run":
        """A new, queued run for `input` (not stored, not sent: `Runner.start` does both)."""
        created = utcnow()
        return cls(run_id or uuid.uuid4().hex, _params_of(input), backend=backend, sweep_id=sweep_id,
                   parent_id=parent_id, timeline_id=timeline_id, segment=segment, notebook=notebook_path(),
                   created_at=created, _history=[RunEvent(created, RunStage.QUEUED, None, None)], _input=input)

    @classmethod
    def waiting(
        cls,
        template: "FramepackInput",
        *,
        backend: str,
        timeline_id: str,
        segment: int,
        parent_id: str | None,
        run_id: str | None = None,
        with_start_image: bool = False,
    ) -> "Run":
        """A timeline segment that is not to be sent yet (WAITING): `template`'s prompt,
        negative prompt, duration and end image. Its start image is the previous segment's
        last frame, so it has none yet, unless `with_start_image` (the first segment, or a
        segment sent again). Not stored: `Runner.hold` stores it."""
        params = _params_of(template)
        if not with_start_image:
            params["start_image"] = None
        created = utcnow()
        return cls(run_id or uuid.uuid4().hex, params, backend=backend, parent_id=parent_id,
                   timeline_id=timeline_id, segment=segment, notebook=notebook_path(), stage=RunStage.WAITING,
                   created_at=created,
                   _history=[RunEvent(created, RunStage.WAITING, None, None)],
                   _input=template if with_start_image else None)

    def link(self, *, store: ImageStore | None, runner: Driver | None = None) -> "Run":
        """Say where the run is kept and who acts for it: the one place these links are set.
        The `Runner` links every run it hands out (in `Runner._link`), the `RunStore` every run it reads."""
        self.store, self.runner = store, runner
        return self

    @property
    def number(self) -> int | None:
        """The run's number in its store (1, 2, ...): what people call it. None until stored."""
        return self.seq

    @property
    def label(self) -> str:
        """How the run is named wherever a person reads it: "#3" (its number), or the first
        8 characters of its id before it is stored. Code keeps using `run_id`."""
        return f"#{self.seq}" if self.seq is not None else self.run_id[:8]

    @property
    def loop(self) -> bool:
        """Whether the video ends on its own start image (the widget's Loop)."""
        start = _image_key(self.params.get("start_image"))
        return start is not None and start == _image_key(self.params.get("end_image"))

    @property
    def has_start_image(self) -> bool:
        return bool(self.params.get("start_image"))

    def segment_input(self, start_image: Any) -> "FramepackInput":
        """This (waiting) segment's input once its start image is known: the previous segment's last frame."""
        return _input_from_params(self.params, self.store, start_image=start_image)

    def begin(self, input: "FramepackInput") -> None:
        """Give a WAITING segment its full input (the runner then queues and sends it)."""
        if self.stage is not RunStage.WAITING:
            raise InvalidInputError(f"run {self.label} is {self.stage}, not waiting: its input is fixed "
                                    "(rerun() starts a new run with a changed input).")
        self.params = _params_of(input)
        self._input = input

    # ----------------------------------------------------------------- what it is
    @property
    def history(self) -> list[RunEvent]:
        """Status history, oldest first (read from the store on first use)."""
        if self._history is None:
            self._history = self.store.history(self.run_id) if self.store is not None else []
        return self._history

    def new_events(self, saved: int) -> list[RunEvent]:
        """The history entries after the first `saved` (none when the history was never read,
        for then nothing was added to it)."""
        return [] if self._history is None else self._history[saved:]

    @property
    def input(self) -> "FramepackInput":
        """The validated input. For stored runs it is rebuilt on first use from the stored images."""
        if self._input is None:
            if not self.has_start_image:
                raise RunNotAttachedError(
                    f"run {self.label} is a timeline segment waiting for the previous segment's "
                    "last frame, so it has no start image yet; its timeline sends it."
                )
            self._input = _input_from_params(self.params, self.store)
        return self._input

    @property
    def prompt(self) -> str:
        return str(self.params.get("prompt") or "")

    @property
    def negative_prompt(self) -> str:
        return str(self.params.get("negative_prompt") or "")

    @property
    def duration(self) -> int | None:
        value = self.params.get("duration")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def start_image_sha(self) -> str | None:
        return _image_sha(self.params.get("start_image"))

    @property
    def end_image_sha(self) -> str | None:
        return _image_sha(self.params.get("end_image"))

    @property
    def cost_usd(self) -> float:
        """What the run costs (or would cost) at PiAPI. Simulated runs cost nothing but report
        the same price, flagged by `simulated`."""
        return cost_usd(self.duration)

    @property
    def simulated(self) -> bool:
        return self.backend == "simulator"

    @property
    def wall_time(self) -> float | None:
        """Seconds from sending the create request to the end (or to now, while it runs)."""
        if self.submitted_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.submitted_at).total_seconds())

    def done(self) -> bool:
        return self.stage.is_final

    # ----------------------------------------------------------------- changes (made by the runner)
    def update(self, **changes: Any) -> bool:
        """Set fields; a moved stage, status or percent adds a history entry. True if anything changed."""
        changed = False
        for name, value in changes.items():
            if name not in _STATE_FIELDS:
                raise UsageError(f"Run.update() cannot set {name!r}: it sets only {', '.join(_STATE_FIELDS)}.")
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        if changed:
            self.updated_at = utcnow()
            if {"stage", "status", "percent"} & changes.keys():
                last = self.history[-1] if self.history else None
                event = RunEvent(self.updated_at, self.stage, self.status, self.percent)
                if last is None or last[1:] != event[1:]:
                    self.history.append(event)
        return changed

    def apply_task(self, task: Task) -> bool:
        """Take in a snapshot of the run's task."""
        return self.update(
            status=task.status,
            status_word=task.status_word or self.status_word,
            percent=task.percent if task.percent is not None else self.percent,
            logs=tuple(task.logs) or self.logs,
            video_url=task.video_url or self.video_url,
            stage=stage_for_status(task.status, self.stage),
        )

    def replace_state(self, other: "Run") -> None:
        """Take every recorded field from `other`, a fresher copy of this run (read from the store)."""
        for name in _STATE_FIELDS + ("seq", "created_at", "_history"):
            setattr(self, name, getattr(other, name))

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call `callback(run)` after every saved change. Returns a function that stops it."""
        return self._observers.add(callback)

    def notify(self) -> None:
        """Tell the observers that the run changed (the runner calls it after each save)."""
        self._observers.notify(self)

    # ----------------------------------------------------------------- handed to the runner
    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()

    async def wait(self) -> "Run":
        """Wait until the run is final and return it (same as `await run`)."""
        if self.done():
            return self
        return await self._attached("wait for it").wait(self)

    def rerun(self, **changes: Any) -> "Run":
        """Start a new run with this input, changed as given (e.g. `prompt=`, `duration=`).
        A looping run's rerun loops too: a new `start_image` is its end image as well,
        unless `end_image` is given."""
        if self.loop and "start_image" in changes and "end_image" not in changes:
            changes["end_image"] = changes["start_image"]
        new_input = self.input.replace(**changes) if changes else self.input
        return self._attached("rerun it").start(new_input)

    def extend(
        self,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        duration: int | None = None,
        end_image: Any = None,
    ) -> "Run":
        """Start a new run whose start image is this run's exact last frame (decoded from the
        video file) and return it; the new run records this one as its parent. The prompt,
        negative prompt and duration default to this run's; the end image to none (this run
        already ended on its own)."""
        driver = self._attached("extend it")
        return driver.start(self.extension_input(prompt, negative_prompt, duration, end_image), parent_id=self.run_id)

    def extension_input(
        self,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        duration: int | None = None,
        end_image: Any = None,
    ) -> "FramepackInput":
        """The input of a run continuing this one (see `extend`); validated, nothing sent."""
        from ..inputs import FramepackInput

        kwargs: dict[str, Any] = {name: self.params[name] for name in ("image_encoding", "max_side") if self.params.get(name)}
        return FramepackInput(
            self.prompt if prompt is None else prompt,
            self.last_frame(),
            end_image=end_image,
            negative_prompt=self.negative_prompt if negative_prompt is None else negative_prompt,
            duration=self.duration if duration is None else duration,
            **kwargs,
        )

    def cancel(self) -> None:
        """Cancel this run (see `Runner.cancel`)."""
        self._attached("cancel it").cancel(self)

    def _attached(self, what: str) -> Driver:
        if self.runner is None:
            raise RunNotAttachedError(
                f"run {self.label} ({self.stage}) has no Runner to {what}: it was read from a "
                "RunStore directly. Take it from widget.runs or runner.get(run_id) (runner.resume() "
                "re-attaches unfinished runs), or send its input again with runner.start(run.input)."
            )
        return self.runner

    # ----------------------------------------------------------------- results
    def last_frame(self) -> "Image.Image":
        """The video's last frame as a PIL image (decoded with PyAV on first use)."""
        if self._last_frame is None:
            self._last_frame = frames.decode_last_frame(self._require_video())
        return self._last_frame

    def show(self) -> None:
        """Display an inline player (outside the widget): the local video embedded in the page."""
        present.show(self.to_dict(history=False))

    def _require_video(self) -> Path:
        if self.video_path is None or not Path(self.video_path).exists():
            raise FileMissingError(
                f"run {self.label} has no local video ({self.stage}). "
                + ("Await it first: `await run`." if not self.done() else (self.hint or ""))
            )
        return Path(self.video_path)

    def code(self) -> str:
        """A Python snippet that reproduces this run with `Client` and `FramepackInput`.

        Images are referenced by their file in the store; the API key is never included.
        """
        return present.code(self.to_dict(history=False), self.store.image_path if self.store is not None else None)

    # ----------------------------------------------------------------- the one serialisation
    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        """Everything about the run as a JSON-safe dict (no bytes, no key): what the store
        keeps, what the widget and export show, what `from_dict` reads back. Keys after
        `video_path` are derived from the others, for readers."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "seq": self.seq,
            "params": dict(self.params),
            "backend": self.backend,
            "sweep_id": self.sweep_id,
            "parent_id": self.parent_id,
            "timeline_id": self.timeline_id,
            "segment": self.segment,
            "notebook": self.notebook,
            "stage": self.stage.value,
            "status": None if self.status is None else self.status.value,
            "status_word": self.status_word,
            "task_id": self.task_id,
            "percent": self.percent,
            "logs": list(self.logs),
            "error": self.error,
            "hint": self.hint,
            **{name: _iso(getattr(self, name)) for name in _TIMES},
            "video_sha": self.video_sha,
            "video_url": self.video_url,
            "video_path": None if self.video_path is None else str(self.video_path),
            # derived
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "duration": self.duration,
            "start_image_sha": self.start_image_sha,
            "end_image_sha": self.end_image_sha,
            "loop": self.loop,
            "cost_usd": self.cost_usd,
            "simulated": self.simulated,
            "wall_time": self.wall_time,
        }
        if history:
            data["history"] = [event.to_dict() for event in self.history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Run":
        """Read back what `to_dict()` wrote (derived keys are ignored; without "history" the
        history is read from `store` on first use)."""
        status = data.get("status")
        history = data.get("history")
        path = data.get("video_path")
        return cls(
            run_id=str(data["run_id"]),
            params=dict(data.get("params") or {}),
            backend=str(data.get("backend") or "piapi"),
            sweep_id=data.get("sweep_id"),
            parent_id=data.get("parent_id"),
            timeline_id=data.get("timeline_id"),
            segment=data.get("segment"),
            notebook=data.get("notebook"),
            seq=data.get("seq"),
            stage=RunStage.parse(data.get("stage") or "queued"),
            status=TaskStatus.parse(status) if status else None,
            status_word=data.get("status_word"),
            task_id=data.get("task_id"),
            percent=data.get("percent"),
            logs=tuple(data.get("logs") or ()),
            error=data.get("error"),
            hint=data.get("hint"),
            **{name: as_time(data.get(name)) for name in _TIMES if data.get(name) is not None},
            video_sha=data.get("video_sha"),
            video_url=data.get("video_url"),
            video_path=Path(path) if path else None,
            _history=None if history is None else [RunEvent.from_dict(e) for e in history],
        )

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        extra = f" {self.percent:.0f}%" if self.percent is not None and not self.done() else ""
        video = f" video={self.video_path.name}" if self.video_path is not None else ""
        loop = " loop" if self.loop else ""
        return f"<Run {self.label} {self.stage}{extra} {self.duration}s{loop} {prompt!r}{video}>"


#: The fields a runner changes as a run moves on (everything but identity and links).
_STATE_FIELDS = tuple(
    f.name for f in fields(Run)
    if f.name not in ("run_id", "params", "notebook", "seq", "created_at", "_history", "_input", "store", "runner")
)


def _image_sha(info: object) -> str | None:
    return info.get("sha256") if isinstance(info, Mapping) else None


def _image_key(info: object) -> str | None:
    """What tells two of a run's images apart: the content hash, or the URL."""
    return (info.get("sha256") or info.get("url") or None) if isinstance(info, Mapping) else None


def _params_of(input: "FramepackInput") -> dict[str, Any]:
    """A run's `params`: the input as `to_params()` gives it, plus how its images are sent."""
    params = dict(input.to_params())
    params["image_encoding"], params["max_side"] = input.image_encoding, input.max_side
    return params


def _input_from_params(
    params: Mapping[str, Any], store: ImageStore | None, *, start_image: Any = None
) -> "FramepackInput":
    """Rebuild a FramepackInput from stored params and the store's normalised image files
    (with `start_image` instead of the stored one, when given)."""
    from ..inputs import FramepackInput

    def image(key: str) -> Any:
        info = params.get(key)
        if not info:
            return None
        if info.get("url"):
            return info["url"]
        if store is None:
            raise RunNotAttachedError(f"the {key.replace('_', ' ')} is in a run store this run is not attached to")
        return store.image_source(info).named(info.get("name"))  # the name its runs are labelled by

    kwargs: dict[str, Any] = {
        "end_image": image("end_image"),
        "negative_prompt": params.get("negative_prompt") or "",
        "duration": params.get("duration", 10),
    }
    for name in ("image_encoding", "max_side"):
        if params.get(name):
            kwargs[name] = params[name]
    start = image("start_image") if start_image is None else start_image
    return FramepackInput(params.get("prompt", ""), start, **kwargs)
