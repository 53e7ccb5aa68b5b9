"""`FramepackWidget`: its synced traits and the public methods the buttons share with Python.

Small state lives in traits (prompt, duration, status, run cards); bytes move only through
custom messages (`_messages`). Generation runs as asyncio tasks on the kernel's own loop
(through the `Runner`), so a cell returns at once and status keeps streaming while the
kernel is idle. The API key is never a trait, never in widget state and never in a
message: only the client holds it. Past 600 lines: every public method a button shares with
Python starts here, and so does the display (the view and its snapshot output); what they
hand off lives beside it (`_messages.py` handlers, `_timelines.py` Extend and the Timeline
panel, `_snapshot.py` what the snapshot says).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Sequence

import anywidget
import traitlets as t

from ..constants import (
    COST_PER_SECOND,
    DEFAULT_MAX_SIDE,
    FPS,
    MAX_COMPARED,
    MAX_DURATION,
    MAX_GALLERY_RUNS,
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    MESSAGE_CHUNK_BYTES,
    MIN_DURATION,
)
from ..errors import InvalidInputError
from ..runs import Run, Runner, RunStage, RunStore
from . import _protocol as proto
from ._embedded import asset, shared_simulator
from ._messages import Messages
from ._snapshot import NotebookSnapshot, snapshot_html, snapshot_poster, snapshot_text
from ._timelines import WidgetTimelines

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
THUMB_SIDE = 256


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _image_name(value: Any) -> str:
    """What to call an image in the slot: its file name, or what kind of value it was."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.startswith("data:"):
            return "data URI"
        return (text.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or text)[:120]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "image bytes"
    kind = type(value)
    if kind.__module__.startswith("PIL."):
        return "PIL image"
    return "numpy array" if kind.__name__ == "ndarray" else kind.__name__


class FramepackWidget(anywidget.AnyWidget):
    """Image-to-video with FramePack: add a start image, write a prompt, press Generate.

    With no `client` and no `PIAPI_API_KEY` it runs the offline simulator (its videos are
    synthetic, and the widget says so). Everything the buttons do is here in Python too:
    `prompt`, `negative_prompt`, `duration`, `start_image`, `end_image`, `generate()`,
    `cancel()`, `runs`, `compare(*runs)`, `sweep(...)`, `timeline(...)`, `extend_from(run)`,
    `export_comparison()`, `export_html(folder)`.
    Runs are kept in a `RunStore` (FRAMEPACK_HOME, else ./.framepack); unfinished ones are
    picked up again when a widget opens. Beside the widget, its output keeps a snapshot of the
    current run (status, prompt, facts and a poster of at most 12 KB) that a notebook shows where
    the widget cannot be drawn; `poster_in_notebook=False` leaves the poster (usually the start
    image) out, so a shared notebook holds no image.
    """

    _esm = asset("widget.js")
    _css = asset("widget.css")
    _owns_client = False  # until __init__ says otherwise (close() may run on a half-made widget)

    prompt = t.Unicode("").tag(sync=True)
    negative_prompt = t.Unicode("").tag(sync=True)
    duration = t.Int(MIN_DURATION).tag(sync=True)
    cost_per_second = t.Float(COST_PER_SECOND).tag(sync=True)
    min_duration = t.Int(MIN_DURATION).tag(sync=True)
    max_duration = t.Int(MAX_DURATION).tag(sync=True)
    #: The other fixed numbers the browser needs (it has no literal copy of any of them).
    limits = t.Dict(
        {"fps": FPS, "max_side": DEFAULT_MAX_SIDE, "max_prompt_chars": MAX_PROMPT_CHARS, "max_compared": MAX_COMPARED,
         "chunk_bytes": MESSAGE_CHUNK_BYTES, "max_upload_bytes": MAX_UPLOAD_BYTES}
    ).tag(sync=True)
    backend = t.Unicode("simulator").tag(sync=True)
    backend_label = t.Unicode("").tag(sync=True)
    balance = t.Unicode("").tag(sync=True)
    start_image_info = t.Dict(allow_none=True, default_value=None).tag(sync=True)
    end_image_info = t.Dict(allow_none=True, default_value=None).tag(sync=True)
    input_error = t.Unicode("").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    status = t.Dict().tag(sync=True)
    history = t.List().tag(sync=True)
    history_total = t.Int(0).tag(sync=True)
    selected = t.List(t.Unicode()).tag(sync=True)
    comparison = t.Dict().tag(sync=True)
    session_cost = t.Float(0.0).tag(sync=True)
    sweep_info = t.Dict().tag(sync=True)
    timeline_info = t.Dict().tag(sync=True)
    notice = t.Unicode("").tag(sync=True)
    #: Runs stored but never sent (a kernel stopped mid-sweep): sent only when the person says.
    queued = t.Dict().tag(sync=True)

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._poster_in_notebook = bool(poster_in_notebook)
        self._store = store if store is not None else RunStore()
        self.notice = self._store.notice or ""  # e.g. a damaged history was moved aside
        self._sim: Simulator | None = None
        self._owns_client = client is None
        self._client = client if client is not None else self._default_client()
        if not inspect.iscoroutinefunction(self._client.create_task):
            raise TypeError(
                "FramepackWidget needs an AsyncClient (it runs on the kernel's event loop): "
                "pass framepack_widgets.AsyncClient(...) instead of Client(...)."
            )
        simulated = self._client.is_simulator
        self.backend = "simulator" if simulated else "piapi"
        self.backend_label = SIMULATOR_LABEL if simulated else PIAPI_LABEL
        self._runner = Runner(self._client, self._store, on_change=self._on_run_change, max_concurrent=max_concurrent)
        self._messages = Messages(self)
        self._snapshot = NotebookSnapshot(self._snapshot_data)
        self._snapshot_poster: tuple[str, bytes | None] = ("", None)
        self._opened_at = datetime.now(timezone.utc)
        self._images: dict[str, ImageSource | None] = {"start": None, "end": None}
        self._thumbs: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, Run] = {}
        self._generated: list[str] = []  # runs started by generate(): what `busy` watches
        self._current: str | None = None
        self._sweep: Sweep | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._eta_cache: dict[int, tuple[float, str]] = {}
        self._timelines = WidgetTimelines(self)
        self.observe(self._on_input_edit, names=["prompt", "negative_prompt", "duration"])

        if start_image is not None:
            self.start_image = start_image
        if end_image is not None:
            self.end_image = end_image
        self._load_history()
        if resume:
            self.resume()
        if not simulated:
            self._spawn(self._fetch_balance())

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with one line of text for wherever only text shows."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if not bundle:
            return bundle
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data["text/plain"] = f"FramePack widget ({self.backend_label})"
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
        run = self._runs.get(self._current) if self._current else None
        facts = {"backend_label": self.backend_label, "total": self.history_total, "prompt": self.prompt}
        return {
            "text/plain": snapshot_text(run, **facts),
            "text/html": snapshot_html(run, simulated=self.backend == "simulator", poster=self._poster_for(run), **facts),
        }

    def _poster_for(self, run: Run | None) -> bytes | None:
        """The run's notebook-sized poster, made once per image (not on every poll): its start
        image, else its video's first frame (the same choice as the cards' poster)."""
        if run is None or not self._poster_in_notebook:
            return None
        key = run.start_image_sha or f"{run.run_id}:{run.video_path}"
        if self._snapshot_poster[0] != key:
            self._snapshot_poster = (key, snapshot_poster(self._messages.poster(run)))
        return self._snapshot_poster[1]

    # ------------------------------------------------------------------ backend
    def _default_client(self) -> "AsyncClient":
        from ..client import AsyncClient

        if os.environ.get("PIAPI_API_KEY"):
            return AsyncClient()  # reads PIAPI_API_KEY / PIAPI_BASE_URL; the key stays in there
        self._sim = shared_simulator(self._store.folder)
        return AsyncClient(api_key=self._sim.api_key, base_url=self._sim.base_url)

    async def _fetch_balance(self) -> None:
        try:
            info = await self._client.account_info()
        except Exception as exc:  # the balance is a nicety: never let it break the widget
            log.debug("account_info failed: %s", type(exc).__name__)
            return
        self.balance = proto.format_balance(info)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any] | None":
        """Run a coroutine on the kernel's loop, keeping a reference until it ends."""
        loop = _running_loop()
        if loop is None:
            coro.close()
            return None
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def client(self) -> "AsyncClient":
        return self._client

    @property
    def store(self) -> RunStore:
        return self._store

    @property
    def runner(self) -> Runner:
        return self._runner

    # ------------------------------------------------------------------ images
    @property
    def start_image(self) -> "ImageSource | None":
        """The start image (required), normalised. Set it from a path, URL, bytes, PIL or numpy."""
        return self._images["start"]

    @start_image.setter
    def start_image(self, value: Any) -> None:
        self._set_image("start", value)

    @property
    def end_image(self) -> "ImageSource | None":
        """The optional end image the video moves towards; None clears it."""
        return self._images["end"]

    @end_image.setter
    def end_image(self, value: Any) -> None:
        self._set_image("end", value)

    def _set_image(self, slot: str, value: Any, *, name: str | None = None, size: int | None = None) -> None:
        if value is None:
            self._images[slot] = None
            self._thumbs.pop(slot, None)
            setattr(self, f"{slot}_image_info", None)
            self._messages.post({"type": "image", "slot": slot, "clear": True})
            return
        from ..inputs import normalize_image

        try:
            source = normalize_image(value, what=f"{slot} image")
        except InvalidInputError as exc:
            self.input_error = str(exc)
            raise
        self._images[slot] = source
        info: dict[str, Any] = {
            "name": name or _image_name(value),
            "width": source.width,
            "height": source.height,
            "size": size or source.original_size or (len(source.data) if source.data else None),
        }
        if source.url:
            info["url"] = source.url
        thumb: dict[str, Any] = {"name": info["name"], "url": source.url}
        if source.data:
            try:
                thumb["data"] = proto.thumbnail_jpeg(source.to_pil(), THUMB_SIDE)
            except Exception:  # a thumbnail is cosmetic; the image itself is valid
                log.debug("no thumbnail for the %s image", slot, exc_info=True)
        self._thumbs[slot] = thumb
        setattr(self, f"{slot}_image_info", info)
        self.input_error = ""
        self._send_thumbnail(slot)

    def _send_thumbnail(self, slot: str) -> None:
        thumb = self._thumbs.get(slot)
        if not thumb:
            return
        if thumb.get("data"):
            self._messages.post({"type": "image", "slot": slot, "name": thumb["name"], "mime": "image/jpeg"},
                                [thumb["data"]])
        elif thumb.get("url"):
            self._messages.post({"type": "image", "slot": slot, "name": thumb["name"], "url": thumb["url"]})

    def _send_thumbnails(self) -> None:
        for slot in proto.SLOTS:
            self._send_thumbnail(slot)

    # ------------------------------------------------------------------ generate / cancel
    def _input(self) -> "FramepackInput":
        from ..inputs import FramepackInput

        start = self._images["start"]
        if start is None:
            raise InvalidInputError(
                "Add a start image first: drop one on the Start image slot, or set widget.start_image."
            )
        return FramepackInput(
            self.prompt, start, end_image=self._images["end"], negative_prompt=self.negative_prompt,
            duration=self.duration,
        )

    def generate(self) -> Run:
        """Start a run with the current inputs and return it at once (`await run` for the end).

        Needs the running event loop (any notebook cell has it). Raises InvalidInputError
        for bad input, which the widget shows too; nothing is sent then. Like the button,
        a second call while the previous run with the same inputs is still being submitted
        returns that run instead of paying twice; for several takes of one input, use
        `sweep(repeats=n)`.
        """
        try:
            inp = self._input()
        except InvalidInputError as exc:
            self.input_error = str(exc)
            raise
        self.input_error = ""
        last = self._runs.get(self._generated[-1]) if self._generated else None
        if last is not None and last.stage.in_flight and last.params == Run.from_input(inp).params:
            log.info("generate(): run %s with the same inputs is still being submitted; not sending twice", last.run_id)
            return last
        run = self._runner.start(inp, parent_id=self._timelines.extending(inp))
        self._generated.append(run.run_id)
        del self._generated[:-20]
        self._current = run.run_id
        self._on_run_change(run)
        return run

    def cancel(self, run: "Run | str | None" = None) -> None:
        """Cancel a run (default: the current one). Returns at once; `await run` to wait."""
        target = self._lookup(run if run is not None else self._current)
        if target is None or target.done():
            return
        self._runner.cancel(target)

    def resume(self) -> list[Run]:
        """Re-attach the store's unfinished runs (done when the widget opens)."""
        if _running_loop() is None:  # outside a kernel or async code there is no loop to drive them
            return []
        try:
            resumed = self._runner.resume()
        except Exception as exc:
            log.warning("could not resume unfinished runs: %s", exc)
            return []
        for run in resumed:
            self._on_run_change(run)
        self._timelines.reopen(resumed)
        self._update_queued()
        return resumed

    def send_queued(self) -> list[Run]:
        """Send the runs a stopped kernel left stored but never sent (see `queued`); they are
        charged like any run. Each is sent at most once, whichever kernel says so first."""
        sent = self._runner.send()
        self._update_queued()
        return sent

    def discard_queued(self) -> list[Run]:
        """Drop the runs a stopped kernel left stored but never sent: nothing is sent or charged."""
        dropped = self._runner.discard()
        self._update_queued()
        return dropped

    def _update_queued(self) -> None:
        waiting = self._runner.awaiting_consent
        if not waiting:
            self.queued = {}
            return
        cost = round(sum(run.cost_usd for run in waiting), 2)
        runs = f"{len(waiting)} queued run{'s' if len(waiting) != 1 else ''}"
        self.queued = {
            "count": len(waiting),
            "cost_usd": cost,
            "run_ids": [run.run_id for run in waiting][:100],
            "text": f"{runs}, ${cost:,.2f}" + (" (simulated, nothing is charged)" if self.backend == "simulator" else "")
            + " \u2014 stored, never sent (the kernel stopped first). Send or discard them?",
        }

    # ------------------------------------------------------------------ runs & history
    @property
    def runs(self) -> list[Run]:
        """The runs this widget knows (its history page, this session's, resumed ones),
        oldest first: `widget.runs[-1]` is the newest. `widget.store.list()` has them all."""
        return sorted(self._runs.values(), key=lambda r: r.created_at)

    def _lookup(self, ref: "Run | str | None") -> Run | None:
        if ref is None or isinstance(ref, Run):
            return ref
        run = self._runs.get(ref)
        if run is None:
            try:
                run = self._runner.get(ref)
            except KeyError:
                return None
            self._runs[run.run_id] = run
        return run

    def _remember(self, runs: list[Run]) -> None:
        for run in runs:
            self._runs.setdefault(run.run_id, run)

    def _make_current(self, run: Run) -> None:
        self._current = run.run_id
        self._update_status(run)
        self._snapshot.refresh()

    def _load_history(self) -> None:
        try:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT)
            self.history_total = self._store.count()
        except Exception as exc:  # an unreadable store must not stop the widget from opening
            log.warning("could not read the run history: %s", exc)
            runs = []
        self._remember(runs)
        self.history = self._timelines.cards(runs)
        if runs and self._current is None:
            self._make_current(runs[0])

    def _on_run_change(self, run: Run) -> None:
        """Runner's hook: called on the loop thread after every saved change of any run."""
        try:
            self._runs[run.run_id] = run
            self._timelines.note(run)
            self._update_card(run)
            if self._current is None or run.run_id == self._current:
                self._make_current(run)  # which refreshes the snapshot
            else:
                self._snapshot.refresh()  # the history's count may have changed
            self._update_session()
        except Exception:  # an observer must never break the run it observes
            log.exception("widget update failed for run %s", run.run_id)

    def _update_card(self, run: Run) -> None:
        card = self._timelines.card(run)
        cards = list(self.history)
        for index, old in enumerate(cards):
            if old.get("id") == card["id"]:
                if old == card:
                    return
                cards[index] = card
                break
        else:
            cards.append(card)
            self.history_total += 1
        if run.stage is RunStage.COMPLETED:
            self._eta_cache.clear()
        cards.sort(key=lambda c: c.get("created") or 0.0, reverse=True)
        self.history = cards[: proto.HISTORY_LIMIT]

    def _eta(self, duration: int) -> tuple[float, str]:
        """Expected wall time (and how it was estimated) from the store's finished runs."""
        if duration not in self._eta_cache:
            try:
                default: Callable[[int], float] | None = self._sim.expected_seconds if self._sim is not None else None
                estimate = self._store.estimate(duration, backend=self.backend, default=default)
                self._eta_cache[duration] = (float(estimate.seconds), estimate.describe())
            except Exception:
                log.debug("no estimate", exc_info=True)
                self._eta_cache[duration] = (12.0 * duration, "a guess")
        return self._eta_cache[duration]

    def _update_status(self, run: Run) -> None:
        eta, text = self._eta(run.duration or MIN_DURATION)
        self.status = proto.run_status(run, eta=eta, eta_text=text)

    def _update_session(self) -> None:
        busy = any(
            run is not None and run.stage.in_flight for run in map(self._runs.get, self._generated)
        )
        cost = 0.0
        for run in self._runs.values():
            if run.created_at < self._opened_at:
                continue  # paid (or not) in an earlier session
            billed = run.task_id is not None and run.stage not in (RunStage.FAILED, RunStage.CANCELLED)
            if run.stage is RunStage.COMPLETED or billed:
                cost += run.cost_usd
        self.busy = busy
        self.session_cost = round(cost, 2)

    # ------------------------------------------------------------------ comparison & export
    def compare(self, *runs: "Run | str") -> None:
        """Show 2 to 4 (`MAX_COMPARED`) runs, Run objects or run ids, side by side; no arguments closes it."""
        if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
            runs = tuple(runs[0])
        if not runs:
            self.comparison = {}
            return
        resolved: list[Run] = []
        for ref in runs:
            run = self._lookup(ref)
            if run is None:
                raise InvalidInputError(f"No run {ref!r} in this widget's history or store: pass a Run, or a run id from widget.runs.")
            if all(r.run_id != run.run_id for r in resolved):
                resolved.append(run)
        if not 2 <= len(resolved) <= MAX_COMPARED:
            raise InvalidInputError(f"Compare takes 2 to {MAX_COMPARED} different runs (got {len(resolved)}): pick others.")
        self.selected = [r.run_id for r in resolved]
        self.comparison = proto.comparison(resolved)

    def _compared_runs(self) -> list[Run]:
        runs = [self._lookup(i) for i in (self.comparison or {}).get("run_ids", [])]
        if not runs:
            raise InvalidInputError("Nothing is being compared: call widget.compare(run_a, run_b) first.")
        return [r for r in runs if r is not None]

    def export_comparison(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current comparison as one side-by-side MP4 (labelled with what differs)."""
        from ..export import export_run_comparison

        runs = self._compared_runs()
        out = Path(path) if path is not None else self._exports_dir() / f"comparison-{runs[0].run_id[:8]}.mp4"
        return export_run_comparison(runs, out)

    def export_run_card(self, run: "Run | str | None" = None, folder: str | os.PathLike[str] | None = None) -> Path:
        """Write a run card (.zip: card.json + poster.jpg) for sharing; default: the current run."""
        from ..export import export_run_card

        target = self._lookup(run if run is not None else self._current)
        if target is None:
            raise InvalidInputError("No run to export yet: generate one first, or pass a run.")
        return export_run_card(target, folder if folder is not None else self._exports_dir())

    def export_html(self, folder: str | os.PathLike[str], runs: "Sequence[Run | str] | None" = None) -> Path:
        """Write a self-contained gallery of runs into `folder` and return the path of its
        ``index.html`` (open it in any browser: no kernel, network or package needed).

        `runs` (Run objects or run ids) default to the selected runs, else every run with a
        video, newest first up to `MAX_GALLERY_RUNS`.
        """
        from ..gallery import export_gallery

        return export_gallery(self._gallery_runs(runs), folder)

    def _gallery_runs(self, runs: "Sequence[Run | str] | None") -> list[Run]:
        if runs is None:
            chosen = [r for r in map(self._lookup, self.selected) if r is not None]
            if not chosen:
                finished = [r for r in self.runs if r.video_path is not None]
                chosen = finished[-MAX_GALLERY_RUNS:]
            return chosen
        resolved = []
        for ref in runs:
            run = self._lookup(ref)
            if run is None:
                raise InvalidInputError(f"No run {ref!r} in this widget's history or store: pass a Run, or a run id from widget.runs.")
            resolved.append(run)
        return resolved

    def _share(self, run_ids: list[str]) -> Path:
        """The Share button: a gallery folder beside the other exports, zipped for the browser."""
        from ..gallery import zip_gallery

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        index = self.export_html(self._exports_dir() / f"gallery-{stamp}", run_ids or None)
        return zip_gallery(index.parent)

    def _exports_dir(self) -> Path:
        return Path(self._store.folder) / "exports"

    def _start_export(self, what: str, run_id: str | None, run_ids: list[str] | None = None) -> None:
        if what == "gallery":
            self._spawn(self._export(lambda: self._share(run_ids or []), "framepack-gallery.zip", "application/zip"))
        elif what == "comparison":
            self._spawn(self._export(self.export_comparison, "comparison.mp4", "video/mp4"))
        else:
            self._spawn(self._export(lambda: self.export_run_card(run_id), "run-card.zip", "application/zip"))

    async def _export(self, job: Callable[[], Path], name: str, mime: str) -> None:
        """Encode in a worker thread (the kernel stays responsive), then download in the browser."""
        self.notice = "Exporting\u2026"
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, job)
        except Exception as exc:
            self.notice = ""
            self._messages.error(f"Export failed: {exc}")
            return
        self.notice = f"Saved {path} in the kernel's folder; downloading it in the browser."
        self._messages.send_file("download", path.name, path.read_bytes(), mime, name=path.name or name)

    # ------------------------------------------------------------------ sweeps
    def sweep(
        self,
        *,
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
        When it finishes, its runs (up to 4) open in the comparison grid."""
        from ..sweeps import plan_sweep, start_sweep

        plan = plan_sweep(
            self._input(), prompt=prompt, negative_prompt=negative_prompt, duration=duration,
            end_image=end_image, repeats=repeats, max_cost=max_cost,
        )
        if self._sweep is not None and not self._sweep.confirmed:
            self._sweep.cancel()  # a new plan replaces one that was never started
        sweep = start_sweep(self._runner, plan, confirm=False, max_concurrent=max_concurrent, max_cost=max_cost)
        self._sweep = sweep
        sweep.observe(self._on_sweep_change)
        if confirm:
            sweep.confirm()
        self._on_sweep_change(sweep)
        return sweep

    def _sweep_action(self, sweep_id: str, action: str) -> None:
        sweep = self._sweep
        if sweep is None or sweep_id != sweep.sweep_id:
            return
        if action == "confirm":
            sweep.confirm()
        else:
            sweep.cancel()
            if not sweep.runs:
                self._sweep, self.sweep_info = None, {}
                return
        self._on_sweep_change(sweep)

    def _on_sweep_change(self, sweep: "Sweep") -> None:
        if sweep is not self._sweep:
            return
        try:
            info = sweep.summary()
            info["run_ids"] = info["run_ids"][:100]
            self.sweep_info = info
            if info["state"] == "done" and self.comparison.get("sweep_id") != sweep.sweep_id:
                finished = [r for r in sweep.runs if r.stage is RunStage.COMPLETED][:MAX_COMPARED]
                if len(finished) >= 2:
                    self.compare(*finished)
                    self.comparison = {**self.comparison, "sweep_id": sweep.sweep_id}
        except Exception:
            log.exception("sweep update failed")

    # ------------------------------------------------------------------ extend & timelines
    def extend_from(self, run: "Run | str | None" = None) -> None:
        """Fill the inputs to continue `run` (default: the current one): its exact last frame
        (decoded from its video) becomes the start image, and its prompt, negative prompt and
        duration are kept for editing; the end image is cleared. Nothing is sent: press
        Generate (or call `generate()`), and the new run records `run` as its parent.
        `run.extend(...)` does the same in one call, without the widget's inputs."""
        self._timelines.extend_from(run)

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
        `max_cost` refuses a dearer plan. `await timeline` for `.video_path`, one MP4."""
        return self._timelines.plan(segments, end_image=end_image, max_cost=max_cost, confirm=confirm)

    def show_chain(self, run: "Run | str") -> "Timeline":
        """Show `run`'s chain (the runs it continues and that continue it) in the Timeline
        panel, where it plays as one video once every part has completed."""
        return self._timelines.show_chain(run)

    # ------------------------------------------------------------------ inputs from the browser
    def _on_input_edit(self, change: dict[str, Any]) -> None:
        if self.input_error and self._images["start"] is not None:
            self.input_error = ""
        if self._current is None:
            self._snapshot.refresh()  # with no run yet, the snapshot shows the prompt

    @t.validate("duration")
    def _check_duration(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if not self.min_duration <= value <= self.max_duration:
            raise t.TraitError(
                f"duration must be whole seconds from {self.min_duration} to {self.max_duration} (got {value})."
            )
        return value

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the widget and, when the widget made it, its client (the store stays open and
        unfinished runs stay stored: the next widget resumes them)."""
        if self._owns_client and _running_loop() is not None:
            # With no loop (interpreter exit) there is nothing to await on; sockets close anyway.
            self._spawn(self._client.close())
        super().close()
