"""`FramepackWidget`: the parts that own its state, wired together, and its public methods.

Small state lives in synced traits (`_state.WidgetState`: prompt, duration, status, run
cards); bytes move only through custom messages. Generation runs as asyncio tasks on the
kernel's own loop (through the `Runner`), so a cell returns at once and status keeps
streaming while the kernel is idle. The API key is never a trait, never in widget state and
never in a message: only the client holds it.

The widget wires its parts together and owns none of their state: each part is a small
object given only what it needs, whose traits the widget mirrors into its synced ones
(`traitlets.dlink`, one way: the part owns the value):

- `ImageSlots` (`_slots`): start and end image, thumbnails, the inputs' error line;
- `RunIndex` (`_index`): the runs it knows, history cards and pages (this notebook's, or
  all), the current run's status, `busy`, the session's and the day's spend; it hears every
  run change on the runner's channel;
- `Comparison`, `SweepPanel`, `TimelinesPanel`, `QueuedRuns`: one panel each;
- `Exports` (comparison MP4, run cards, galleries), `Posters`, the `Notice` line;
- `Messages`: one handler per browser message, handing each to the part that owns it.

Only the inputs the person edits (`prompt`, `negative_prompt`, `duration`, `loop`) are the
widget's own. Runs are named by their number in the store ("run #3") wherever a person reads
them; code keeps their ids. The day's budget (`budget=`, else FRAMEPACK_BUDGET) is a
`runs.Budget` the runner checks before anything is stored or sent; its refusals show under the
inputs, whoever asked.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import traitlets as t

from .._environment import daily_budget, notebook_path
from ..errors import InvalidInputError, UsageError
from ..runs import Budget, Run, Runner, RunStore
from ..runs.budget import budget_limit
from . import _protocol as proto
from ._background import Background, running_loop
from ._classroom import ClassPanel
from ._comparison import Comparison
from ._embedded import shared_simulator
from ._exports import Exports
from ._index import RunIndex
from ._messages import Messages, ViewActions
from ._outbox import Notice, Outbox
from ._posters import Posters
from ._queue import QueuedRuns
from ._slots import ImageSlots
from ._snapshot import NotebookPoster, NotebookSnapshot, snapshot_html, snapshot_text
from ._state import WidgetState
from ._sweep_panel import SweepPanel, texts_the_sweep_gives
from ._timelines import TimelinesPanel, extension_frame

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient
    from ..inputs import FramepackInput, ImageSource
    from ..simulator import Simulator
    from ..sweeps import Sweep
    from ..timeline import Timeline

__all__ = ["FramepackWidget", "SIMULATOR_LABEL"]

log = logging.getLogger(__name__)

SIMULATOR_LABEL = "Offline simulator \u2014 videos are synthetic, not FramePack's"
PIAPI_LABEL = "PiAPI"


class FramepackWidget(WidgetState):
    """Image-to-video with FramePack: add a start image, write a prompt, press Generate.

    With no `client` and no `PIAPI_API_KEY` it runs the offline simulator (its videos are
    synthetic, and the widget says so); in a student's server on a JupyterHub whose teacher set
    FRAMEPACK_SERVICE_URL, it runs through the class service (the header shows the class
    budget, run cards offer "Share with class"). Everything the buttons do is here in Python too:
    `prompt`, `negative_prompt`, `duration`, `loop`, `start_image`, `end_image`,
    `start_image_origin`, `generate()`, `cancel()`, `runs`, `compare(*runs)`, `sweep(...)`,
    `timeline(...)`, `extend_from(run)`, `restore_start_image()`, `restore_settings(video)`,
    `export_comparison()`, `export_html(folder)`.
    Runs are kept in a `RunStore` (FRAMEPACK_HOME, else ./.framepack); unfinished ones are
    picked up again when a widget opens, which starts on its own inputs ("Ready"); its history
    shows this notebook's runs, and all of the store's one click away. `budget` (US dollars a
    day, else FRAMEPACK_BUDGET) refuses any run, sweep or timeline that would take the day's
    spend in this store past it, before anything is sent (`BudgetExceededError`).
    Beside the widget, its output keeps a snapshot of the
    current run (status, prompt, facts and a poster of at most 12 KB) that a notebook shows where
    the widget cannot be drawn; `poster_in_notebook=False` leaves the poster (usually the start
    image) out, so a shared notebook holds no image.
    """

    _owns_client = False  # until __init__ says otherwise (close() may run on a half-made widget)
    _stop_listening = None  # set once the widget listens to its runner's change channel

    def __init__(
        self,
        client: "AsyncClient | None" = None,
        *,
        store: RunStore | None = None,
        max_concurrent: int = 3,
        resume: bool = True,
        start_image: Any = None,
        end_image: Any = None,
        poster_in_notebook: bool = True,
        budget: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        limit = budget_limit(budget) if budget is not None else daily_budget()  # bad values: refused first
        self._store = store if store is not None else RunStore()
        self._sim: Simulator | None = None
        self._owns_client = client is None
        self._client = client if client is not None else self._default_client()
        if not inspect.iscoroutinefunction(self._client.create_task):
            raise UsageError(
                "FramepackWidget needs an AsyncClient (it runs on the kernel's event loop): "
                "pass framepack_widgets.AsyncClient(...) instead of Client(...)."
            )
        simulated = self._client.is_simulator
        self.backend = "simulator" if simulated else "piapi"
        self._backend_label = SIMULATOR_LABEL if simulated else PIAPI_LABEL
        self._budget = Budget(limit, self._store, backend=self.backend)
        self._runner = Runner(self._client, self._store, max_concurrent=max_concurrent, budget=self._budget)
        self._background = Background()
        self._snapshot = NotebookSnapshot(self._snapshot_data)
        outbox = Outbox(lambda content, buffers: self.send(content, buffers))
        self._notice_line = Notice(folders=[self._store.folder])
        self._notice_line.say(self._store.notice or "")  # e.g. a damaged history was moved aside
        self._slots = ImageSlots(outbox)
        self._budget.observe(lambda refusal: self._slots.refuse(str(refusal)))
        self._index = RunIndex(self._runner, self._store, backend=self.backend, notebook=notebook_path(),
                               budget=self._budget, changed=self._snapshot.refresh,
                               default_eta=self._sim.expected_seconds if self._sim is not None else None)
        posters = Posters(self._store)
        self._notebook_poster = NotebookPoster(posters.poster, enabled=bool(poster_in_notebook))
        self._compared = Comparison(self._index, runner=self._runner)
        self._sweeps = SweepPanel(self._runner, self._compared)
        self._timelines = TimelinesPanel(self._runner, self._index, self._slots,
                                         negative_prompt=lambda: self.negative_prompt,
                                         end_image=lambda: self._slots.get("start" if self.loop else "end"))
        self._queue = QueuedRuns(self._runner, simulated=simulated)
        self._exports = Exports(Path(self._store.folder) / "exports", index=self._index, comparison=self._compared,
                                outbox=outbox, background=self._background)
        self._mirror(self._notice_line, text="_notice")
        self._mirror(self._slots, start_image_info="_start_image_info", end_image_info="_end_image_info",
                     input_error="_input_error")
        self._mirror(self._index, "status", "busy", "session_cost", history="_history", history_total="_history_total",
                     scope="_history_scope", spend="_spend")
        t.link((self._index, "show_all"), (self, "_history_all"))  # both ways: the History panel's toggle
        self._mirror(self._compared, comparison="_comparison")
        t.link((self._compared, "selected"), (self, "selected"))  # both ways: the browser selects cards
        self._mirror(self._sweeps, sweep_info="_sweep_info")
        self._mirror(self._timelines, timeline_info="_timeline_info")
        self._mirror(self._queue, queued="_queued")
        self._classroom = ClassPanel(self._client, lookup=self._index.lookup, spawn=self._background.spawn,
                                     say=self._notice_line.say)
        self._mirror(self._classroom, info="_class")
        if self._classroom.active:
            self._mirror(self._classroom, label="_backend_label")
        messages = Messages(
            outbox, actions=ViewActions(generate=self._generate_with, cancel=self.cancel, extend=self.extend_from,
                                        sweep_images=self._sweep_images, restore=self._restore_dropped,
                                        back=self.restore_start_image),
            slots=self._slots, index=self._index, posters=posters, comparison=self._compared, sweeps=self._sweeps,
            queue=self._queue, exports=self._exports, timelines=self._timelines,
            classroom=self._classroom,
        )
        self.on_msg(messages.receive)
        self._stop_listening = self._runner.observe(self._index.note)
        self._runner.observe(self._classroom.note)  # in a class: the budget again after each run
        self.observe(self._on_input_edit, names=["prompt", "negative_prompt", "duration"])

        if start_image is not None:
            self.start_image = start_image
        if end_image is not None:
            self.end_image = end_image
        self._index.load()
        if resume:
            self.resume()
        if not simulated and not self._classroom.active:  # in a class, the class budget stands for it
            self._background.spawn(self._fetch_balance())

    def _mirror(self, part: t.HasTraits, *names: str, **renamed: str) -> None:
        """Copy a part's traits into the synced traits of the same name (or `renamed`), from now on."""
        for name, target in [*((n, n) for n in names), *renamed.items()]:
            t.dlink((part, name), (self, target))

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with one line of text for wherever only text shows."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if not bundle:
            return bundle
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data["text/plain"] = f"FramePack widget ({self._backend_label})"
        return data, metadata

    def _ipython_display_(self, **kwargs: Any) -> None:
        """Two outputs: the widget view, then its snapshot (`_snapshot`), which the kernel keeps
        in step with the runs so a notebook saved at any moment shows the latest one."""
        from IPython.display import display

        bundle = self._repr_mimebundle_(**kwargs)
        if not bundle:
            return  # a closed widget has no view to show
        data, metadata = bundle
        display(data, metadata=metadata, raw=True)
        self._snapshot.display()

    def _snapshot_data(self) -> dict[str, str]:
        run = self._index.current
        facts = {"backend_label": self._backend_label, "total": self._history_total, "prompt": self.prompt}
        poster = self._notebook_poster.for_run(run)
        return {
            "text/plain": snapshot_text(run, **facts),
            "text/html": snapshot_html(run, simulated=self.backend == "simulator", poster=poster, **facts),
        }

    # ------------------------------------------------------------------ backend
    def _default_client(self) -> "AsyncClient":
        from .._environment import class_service
        from ..client import AsyncClient

        if os.environ.get("PIAPI_API_KEY") or class_service() is not None:
            return AsyncClient()  # reads PIAPI_API_KEY / PIAPI_BASE_URL (or the class service's address and
            # the hub token); the key stays in there
        self._sim = shared_simulator(self._store.folder)
        return AsyncClient(api_key=self._sim.api_key, base_url=self._sim.base_url)

    async def _fetch_balance(self) -> None:
        try:
            info = await self._client.account_info()
        except Exception as exc:  # the balance is a nicety: never let it break the widget
            log.debug("account_info failed: %s", type(exc).__name__)
            return
        self.balance = proto.format_balance(info)

    @property
    def client(self) -> "AsyncClient":
        return self._client

    @property
    def store(self) -> RunStore:
        return self._store

    @property
    def runner(self) -> Runner:
        return self._runner

    @property
    def budget(self) -> Budget:
        """The day's budget in this store: `.limit_usd` (None: no cap), `.spent_today()`, `.left()`."""
        return self._budget

    # ------------------------------------------------------------------ images
    @property
    def start_image(self) -> "ImageSource | None":
        """The start image (required), normalised. Set it from a path, URL, bytes, PIL or numpy."""
        return self._slots.get("start")

    @start_image.setter
    def start_image(self, value: Any) -> None:
        self._slots.set("start", value)

    @property
    def end_image(self) -> "ImageSource | None":
        """The optional end image the video moves towards; None clears it."""
        return self._slots.get("end")

    @end_image.setter
    def end_image(self, value: Any) -> None:
        self._slots.set("end", value)
        if value is not None:
            self.loop = False  # an end image of its own: the video no longer returns to its start

    @property
    def start_image_origin(self) -> dict[str, Any] | None:
        """Where the start image came from, or None when it was set by hand: ``{"text": "last
        frame of run #3", "continues": <run id or None>, "back_to": "lake_cabin.jpg"}``
        (`restore_start_image()` goes back to that image). Setting another image clears it."""
        return self._slots.origin

    def restore_start_image(self) -> bool:
        """Put back the start image there was before Extend (or before a video's settings were
        restored): the Start image slot's "back to ..." button. False when there is none."""
        return self._slots.back()

    # ------------------------------------------------------------------ generate / cancel
    def _input(self, start: Any = None, **texts: str) -> "FramepackInput":
        """The inputs as one request (`start`: another start image than the slot's; `texts`:
        a prompt or negative prompt in place of the widget's); with Loop on, the start image
        is the end image too."""
        from ..inputs import FramepackInput

        start = start if start is not None else self._slots.get("start")
        if start is None:
            raise InvalidInputError(
                "Add a start image first: drop one on the Start image slot, or set widget.start_image."
            )
        end = None if self.loop else self._slots.get("end")
        inp = FramepackInput(texts.get("prompt", self.prompt), start, end_image=end,
                             negative_prompt=texts.get("negative_prompt", self.negative_prompt), duration=self.duration)
        return inp.replace(end_image=inp.start_image) if self.loop else inp

    def generate(self) -> Run:
        """Start a run with the current inputs and return it at once (`await run` for the end).

        Needs the running event loop (any notebook cell has it). Raises InvalidInputError
        for bad input, and BudgetExceededError past the day's budget, which the widget shows
        too; nothing is sent then. Like the button,
        a second call while the previous run with the same inputs is still being submitted
        returns that run instead of paying twice; for several takes of one input, use
        `sweep(repeats=n)`.
        """
        try:
            inp = self._input()
        except InvalidInputError as exc:
            self._slots.refuse(str(exc))
            raise
        self._slots.accept()
        last = self._index.last_generated()
        if last is not None and last.stage.in_flight and last.params == Run.from_input(inp).params:
            log.info("generate(): run %s with the same inputs is still being submitted; not sending twice", last.run_id)
            return last
        run = self._runner.start(inp, parent_id=self._slots.continues(inp))
        self._index.generated(run)
        return run

    def _generate_with(self, edits: dict[str, Any]) -> Run:
        """The Generate button: the browser's latest edits of the inputs, then `generate()`."""
        for name, value in edits.items():
            setattr(self, name, value)
        return self.generate()

    def cancel(self, run: "Run | str | None" = None) -> None:
        """Cancel a run (default: the current one). Returns at once; `await run` to wait."""
        target = self._index.lookup(run) if run is not None else self._index.current
        if target is None or target.done():
            return
        self._runner.cancel(target)

    def resume(self) -> list[Run]:
        """Re-attach the store's unfinished runs (done when the widget opens)."""
        if running_loop() is None:  # outside a kernel or async code there is no loop to drive them
            return []
        try:
            resumed = self._runner.resume()
        except Exception as exc:
            log.warning("could not resume unfinished runs: %s", exc)
            return []
        self._index.resumed(resumed)
        self._timelines.reopen(resumed)
        self._queue.update()
        return resumed

    def send_queued(self) -> list[Run]:
        """Send the runs a stopped kernel left stored but never sent (see `queued`); they are
        charged like any run. Each is sent at most once, whichever kernel says so first."""
        return self._queue.send()

    def discard_queued(self) -> list[Run]:
        """Drop the runs a stopped kernel left stored but never sent: nothing is sent or charged."""
        return self._queue.discard()

    @property
    def runs(self) -> list[Run]:
        """The runs this widget knows (its history page, this session's, resumed ones),
        oldest first: `widget.runs[-1]` is the newest. `widget.store.list()` has them all."""
        return self._index.runs

    # ------------------------------------------------------------------ comparison & export
    def compare(self, *runs: "Run | str | int") -> None:
        """Show 2 to 4 (`MAX_COMPARED`) runs side by side: Run objects, run ids, or run numbers
        as the cards show them (`compare(3, 4)` or `compare("#3", "#4")`); no arguments closes it."""
        self._compared.show(runs)

    def export_comparison(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current comparison as one side-by-side MP4 (labelled with what differs)."""
        return self._exports.comparison(path)

    def export_run_card(self, run: "Run | str | None" = None, folder: str | os.PathLike[str] | None = None) -> Path:
        """Write a run card (.zip: card.json + poster.jpg) for sharing; default: the current run."""
        return self._exports.run_card(run, folder)

    def export_html(self, folder: str | os.PathLike[str], runs: "Sequence[Run | str] | None" = None) -> Path:
        """Write a self-contained gallery of runs into `folder` and return the path of its
        ``index.html`` (open it in any browser: no kernel, network or package needed).

        `runs` (Run objects or run ids) default to the selected runs, else every run with a
        video, newest first up to `MAX_GALLERY_RUNS`.
        """
        return self._exports.gallery(folder, runs)

    # ------------------------------------------------------------------ sweeps
    def sweep(
        self,
        *,
        start_image: Any = None,
        prompt: Any = None,
        negative_prompt: Any = None,
        duration: Any = None,
        end_image: Any = None,
        repeats: int = 1,
        max_cost: float | None = None,
        max_concurrent: int | None = 3,
        confirm: bool = False,
    ) -> "Sweep":
        """Plan a grid of runs on the current inputs (lists of values to try) and show how many
        and what they cost. Nothing starts until it is confirmed: the widget's "Start sweep"
        button, `sweep.confirm()`, or `confirm=True`. `max_cost` refuses a dearer sweep.
        `start_image=[...]` (paths, URLs, bytes, PIL images, arrays: anything `FramepackInput`
        takes, each checked before anything is planned) makes an image sweep, one run per
        image, labelled by the image's name; dropping several images on the Start image slot
        plans the same. With Loop on, each run ends on its own start image.
        When it finishes, its runs (up to 4) open in the comparison grid."""
        images = start_image if isinstance(start_image, (list, tuple)) else [start_image]
        base = self._input(images[0] if self._slots.get("start") is None and images else None,
                           **texts_the_sweep_gives(prompt=prompt, negative_prompt=negative_prompt))
        return self._sweeps.plan(
            base, start_image=start_image, prompt=prompt, negative_prompt=negative_prompt, duration=duration,
            end_image=end_image, repeats=repeats, max_cost=max_cost, max_concurrent=max_concurrent, confirm=confirm,
            loop=self.loop,
        )

    def _sweep_images(self, images: list[tuple[bytes, str]]) -> "Sweep":
        """Several images dropped on the Start image slot: an image sweep on the current inputs."""
        from ..inputs import normalize_image

        sources = [normalize_image(data, what=f"image {k + 1} ({name})").named(name)
                   for k, (data, name) in enumerate(images)]
        return self.sweep(start_image=sources)

    # ------------------------------------------------------------------ extend & timelines
    def extend_from(self, run: "Run | str | None" = None) -> None:
        """Fill the inputs to continue `run` (default: the current one): its exact last frame
        (decoded from its video) becomes the start image, and its prompt, negative prompt and
        duration are kept for editing; the end image is cleared. Nothing is sent: press
        Generate (or call `generate()`), and the new run records `run` as its parent.
        `run.extend(...)` does the same in one call, without the widget's inputs."""
        target = self._index.lookup(run if run is not None else self.status.get("run_id"))
        frame = extension_frame(target)  # raises when there is no finished run to continue
        assert target is not None
        origin = f"last frame of run {target.label}"
        self._slots.set("start", frame, name=origin, continues=target.run_id, origin=origin)
        self.end_image = None
        self.prompt, self.negative_prompt = target.prompt, target.negative_prompt
        if target.duration is not None:
            self.duration = target.duration
        back = self._slots.origin or {}
        again = f" (\u201cback to {back['back_to']}\u201d beside the start image undoes it)" if back.get("back_to") else ""
        self._notice_line.say(f"Extending run {target.label}: its last frame is the start image{again}. "
                              "Edit the prompt if you like, then press Generate.")

    def timeline(
        self,
        segments: Any,
        *,
        end_image: Any = None,
        max_cost: float | None = None,
        confirm: bool = False,
    ) -> "Timeline":
        """Plan a timeline: `segments` is a list of (prompt, duration) pairs, run one after
        another, each from the previous one's last frame (the first from the start image,
        with the current negative prompt; `end_image` goes to the last one). It shows the
        plan, total length and cost in the Timeline panel and starts nothing until it is
        confirmed: the panel's "Start timeline", `timeline.confirm()`, or `confirm=True`.
        `max_cost` refuses a dearer plan. `await timeline` for `.video_path`, one MP4.
        With Loop on, the last segment ends on the start image unless `end_image` is given."""
        if end_image is None and self.loop:
            end_image = self._slots.get("start")
        return self._timelines.plan(segments, end_image=end_image, max_cost=max_cost, confirm=confirm)

    def show_chain(self, run: "Run | str") -> "Timeline":
        """Show `run`'s chain (the runs it continues and that continue it) in the Timeline
        panel, where it plays as one video once every part has completed."""
        return self._timelines.show_chain(run)

    # ------------------------------------------------------------------ settings from a video
    def restore_settings(self, video: str | os.PathLike[str], *, name: str | None = None) -> dict[str, Any]:
        """Take back the settings an MP4 made by this package carries (a run's video, a
        timeline, `framepack generate -o`, an export): prompt, negative prompt, duration,
        Loop, and the start image, from the run store when the settings name a run (or an
        image) it has, else the video's first frame. Dropping the MP4 on the widget does the
        same. Says what it restored in the notice and returns it; an MP4 without settings, or
        a file that is no video, raises InvalidInputError and changes nothing."""
        from ._restore import settings_from_video

        restored = settings_from_video(video, runner=self._runner, name=name)
        self._slots.set("start", restored.start_image, name=restored.start_name,
                        origin=f"restored from {name or Path(video).name}")
        self.prompt, self.negative_prompt = restored.prompt, restored.negative_prompt
        if restored.duration is not None:
            self.duration = restored.duration
        self._slots.set("end", None if restored.loop else restored.end_image)
        self.loop = restored.loop
        self._notice_line.say(restored.message)
        return restored.to_dict()

    def _restore_dropped(self, data: bytes, name: str) -> dict[str, Any]:
        """An MP4 dropped on the widget, as the browser sent it."""
        import uuid

        path = self._store.temp_path(f"dropped-{uuid.uuid4().hex}.mp4")
        try:
            path.write_bytes(data)
            return self.restore_settings(path, name=name)
        finally:
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ inputs from the browser
    def _on_input_edit(self, change: dict[str, Any]) -> None:
        self._slots.edited()
        if self._index.current is None:
            self._snapshot.refresh()  # with no run yet, the snapshot shows the prompt

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the widget and, when the widget made it, its client (the store stays open and
        unfinished runs stay stored: the next widget resumes them)."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._owns_client and running_loop() is not None:
            # With no loop (interpreter exit) there is nothing to await on; sockets close anyway.
            self._background.spawn(self._client.close())
        super().close()
