"""`FramepackWidget`: FramePack image-to-video in a notebook cell.

The Python half keeps small state in synced traits (prompt, duration, status, run cards)
and moves bytes only through custom messages with binary buffers (images up; thumbnails,
posters, videos and downloads down); `_widget_protocol` documents the wire format.
Generation runs as asyncio tasks on the kernel's own loop (through `Runner`), so a cell
returns at once and status keeps streaming while the kernel is idle. The API key is never
a trait, never in widget state and never in a message: only the client holds it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from . import _widget_protocol as proto
from .errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from .client import AsyncClient
    from .inputs import FramepackInput, ImageSource
    from .runs import Run, Runner
    from .store import RunStore
    from .sweeps import Sweep

__all__ = ["FramepackWidget", "SIMULATOR_LABEL"]

log = logging.getLogger(__name__)

SIMULATOR_LABEL = "Offline simulator \u2014 videos are synthetic, not FramePack's"
PIAPI_LABEL = "PiAPI"
#: The embedded simulator's clock runs this much faster than its "realistic" default, so a
#: 10 s video is ready in about 15 s (30 s: about 40 s). FRAMEPACK_SIM_TIME_SCALE overrides.
DEMO_TIME_SCALE = 2.5
THUMB_SIDE = 256
POSTER_SIDE = 320
SEEN_REQUESTS = 256


def _asset(name: str) -> Path | str:
    """The shipped frontend file: the wheel's static/ copy, else js/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for path in (here / "static" / name, here.parent / "js" / name):
        if path.is_file():
            return path
    if name.endswith(".js"):  # a broken install: say so in the cell instead of failing at import
        return (
            "export default { render({ el }) { el.textContent = "
            "'framepack_widgets: widget.js is missing from this installation; reinstall the package.'; } };"
        )
    return ""


# One embedded simulator per kernel and store folder, shared by the widgets on that store,
# stopped at exit. Its tasks live in <store>/simulator, so a run left processing when the
# kernel died is finished by the next kernel's simulator, as PiAPI would have finished it.
_simulators: dict[Path, Any] = {}
_simulator_lock = threading.Lock()


def shared_simulator(store_folder: "str | os.PathLike[str] | None" = None) -> Any:
    """The kernel's embedded offline simulator for a store folder (started on first use)."""
    from .store import default_folder

    state_dir = (Path(store_folder) if store_folder is not None else default_folder()).resolve() / "simulator"
    with _simulator_lock:
        sim = _simulators.get(state_dir)
        if sim is None:
            import atexit

            from .simulator import Simulator

            scale = float(os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "") or DEMO_TIME_SCALE)
            sim = _simulators[state_dir] = Simulator(time_scale=scale, state_dir=state_dir).start()
            atexit.register(sim.stop)
        return sim


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _image_name(value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.startswith("data:"):
            return "data URI"
        return (text.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or text)[:120]
    kind = type(value).__name__
    if hasattr(value, "getbands"):
        return "PIL image"
    return {"bytes": "image bytes", "bytearray": "image bytes", "memoryview": "image bytes", "ndarray": "numpy array"}.get(
        kind, kind
    )


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class FramepackWidget(anywidget.AnyWidget):
    """Image-to-video with FramePack: add a start image, write a prompt, press Generate.

    With no `client` and no `PIAPI_API_KEY` it runs the offline simulator (its videos are
    synthetic, and the widget says so). Everything the buttons do is here in Python too:
    `prompt`, `negative_prompt`, `duration`, `start_image`, `end_image`, `generate()`,
    `cancel()`, `runs`, `compare(*runs)`, `sweep(...)`, `export_comparison()`.
    Runs are kept in a `RunStore` (FRAMEPACK_HOME, else ./.framepack); unfinished ones are
    picked up again when a widget opens.
    """

    _esm = _asset("widget.js")
    _css = _asset("widget.css")

    prompt = t.Unicode("").tag(sync=True)
    negative_prompt = t.Unicode("").tag(sync=True)
    duration = t.Int(10).tag(sync=True)
    cost_per_second = t.Float(0.03).tag(sync=True)
    min_duration = t.Int(10).tag(sync=True)
    max_duration = t.Int(30).tag(sync=True)
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
    notice = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        client: "AsyncClient | None" = None,
        *,
        store: "RunStore | None" = None,
        max_concurrent: int = 3,
        resume: bool = True,
        start_image: Any = None,
        end_image: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from .inputs import COST_PER_SECOND, MAX_DURATION, MIN_DURATION
        from .runs import Runner
        from .store import RunStore

        self.cost_per_second = COST_PER_SECOND
        self.min_duration, self.max_duration = MIN_DURATION, MAX_DURATION
        self._store = store if store is not None else RunStore()
        self._sim: Any = None
        self._owns_client = client is None
        self._client = client if client is not None else self._default_client()
        if not inspect.iscoroutinefunction(getattr(self._client, "create_task", None)):
            raise TypeError(
                "FramepackWidget needs an AsyncClient (it runs on the kernel's event loop): "
                "pass framepack_widgets.AsyncClient(...) instead of Client(...)."
            )
        simulated = bool(getattr(self._client, "is_simulator", False))
        self.backend = "simulator" if simulated else "piapi"
        self.backend_label = SIMULATOR_LABEL if simulated else PIAPI_LABEL
        self._runner: Runner = Runner(
            self._client, self._store, on_change=self._on_run_change, max_concurrent=max_concurrent
        )
        self._opened_at = datetime.now(timezone.utc)
        self._images: dict[str, ImageSource | None] = {"start": None, "end": None}
        self._thumbs: dict[str, dict] = {}
        self._posters: OrderedDict[str, bytes] = OrderedDict()
        self._runs: dict[str, Run] = {}
        self._generated: list[str] = []  # runs started by generate(): what `busy` watches
        self._seen_requests: OrderedDict[str, None] = OrderedDict()
        self._current: str | None = None
        self._sweep: Sweep | None = None
        self._tasks: set[asyncio.Task] = set()
        self._eta_cache: dict[int, tuple[float, str]] = {}
        self.on_msg(self._on_msg)
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

    # ------------------------------------------------------------------ backend
    def _default_client(self) -> "AsyncClient":
        from .client import AsyncClient

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

    def _spawn(self, coro: Any) -> "asyncio.Task | None":
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
    def store(self) -> "RunStore":
        return self._store

    @property
    def runner(self) -> "Runner":
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
            self._post({"type": "image", "slot": slot, "clear": True})
            return
        from .inputs import normalize_image

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
        self._send_thumb(slot)

    def _send_thumb(self, slot: str) -> None:
        thumb = self._thumbs.get(slot)
        if not thumb:
            return
        if thumb.get("data"):
            self._post({"type": "image", "slot": slot, "name": thumb["name"], "mime": "image/jpeg"}, [thumb["data"]])
        elif thumb.get("url"):
            self._post({"type": "image", "slot": slot, "name": thumb["name"], "url": thumb["url"]})

    # ------------------------------------------------------------------ generate / cancel
    def _input(self) -> "FramepackInput":
        from .inputs import FramepackInput

        if self._images["start"] is None:
            raise InvalidInputError(
                "Add a start image first: drop one on the Start image slot, or set widget.start_image."
            )
        return FramepackInput(
            self.prompt,
            self._images["start"],
            end_image=self._images["end"],
            negative_prompt=self.negative_prompt,
            duration=self.duration,
        )

    def generate(self) -> "Run":
        """Start a run with the current inputs and return it at once (`await run` for the end).

        Needs the running event loop (any notebook cell has it). Raises InvalidInputError
        for bad input, which the widget shows too; nothing is sent then.
        """
        try:
            inp = self._input()
        except InvalidInputError as exc:
            self.input_error = str(exc)
            raise
        self.input_error = ""
        run = self._runner.start(inp)
        self._generated.append(run.run_id)
        del self._generated[:-20]
        self._current = run.run_id
        self._on_run_change(run)
        return run

    def cancel(self, run: "Run | str | None" = None) -> None:
        """Cancel a run (default: the current one). Returns at once; `await run` to wait."""
        target = self._lookup(run if run is not None else self._current)
        if target is None or proto.stage_of(target) in proto.FINAL_STAGES:
            return
        self._runner.cancel(target)

    def resume(self) -> list["Run"]:
        """Re-attach the store's unfinished runs (done when the widget opens)."""
        if _running_loop() is None:  # outside a kernel or async code there is no loop to drive them
            return []
        try:
            resumed = list(self._runner.resume())
        except Exception as exc:
            log.warning("could not resume unfinished runs: %s", exc)
            return []
        for run in resumed:
            self._on_run_change(run)
        return resumed

    # ------------------------------------------------------------------ runs & history
    @property
    def runs(self) -> list["Run"]:
        """The runs this widget knows (its history page, this session's, resumed ones),
        oldest first: `widget.runs[-1]` is the newest. `widget.store.list()` has them all."""
        return sorted(self._runs.values(), key=lambda r: proto._timestamp(getattr(r, "created_at", None)) or 0.0)

    def _lookup(self, ref: Any) -> "Run | None":
        if ref is None:
            return None
        if not isinstance(ref, str):
            return ref if hasattr(ref, "run_id") else None
        run = self._runs.get(ref)
        if run is None:
            try:
                run = self._runner.get(ref)
            except KeyError:
                return None
            self._runs[run.run_id] = run
        return run

    def _load_history(self) -> None:
        try:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT)
            self.history_total = int(self._store.count())
        except Exception as exc:  # an unreadable store must not stop the widget from opening
            log.warning("could not read the run history: %s", exc)
            runs = []
        for run in runs:
            self._runs[run.run_id] = run
        self.history = [proto.run_card(r) for r in runs]
        if runs and self._current is None:
            self._current = runs[0].run_id
            self._update_status(runs[0])

    def _on_run_change(self, run: "Run") -> None:
        """Runner's hook: called on the loop thread after every saved change of any run."""
        try:
            self._runs[run.run_id] = run
            self._update_card(run)
            if self._current is None or run.run_id == self._current:
                self._current = run.run_id
                self._update_status(run)
            self._update_session()
        except Exception:  # an observer must never break the run it observes
            log.exception("widget update failed for run %s", getattr(run, "run_id", "?"))

    def _update_card(self, run: "Run") -> None:
        card = proto.run_card(run)
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
        if card["stage"] == "completed":
            self._eta_cache.clear()
        cards.sort(key=lambda c: c.get("created") or 0.0, reverse=True)
        self.history = cards[: proto.HISTORY_LIMIT]

    def _eta(self, duration: int) -> tuple[float, str]:
        """Expected wall time (and how it was estimated) from the store's finished runs."""
        if duration not in self._eta_cache:
            kwargs: dict[str, Any] = {}
            if self._sim is not None:
                from .eta import simulator_clock

                kwargs["default"] = simulator_clock(self._sim)
            try:
                estimate = self._store.estimate(duration, backend=self.backend, **kwargs)
                self._eta_cache[duration] = (float(estimate.seconds), estimate.describe())
            except Exception:
                log.debug("no estimate", exc_info=True)
                self._eta_cache[duration] = (12.0 * duration, "a guess")
        return self._eta_cache[duration]

    def _update_status(self, run: "Run") -> None:
        eta, text = self._eta(proto.run_fields(run)[2] or 10)
        self.status = proto.run_status(run, eta=eta, eta_text=text)

    def _update_session(self) -> None:
        busy = False
        for run_id in self._generated:
            run = self._runs.get(run_id)
            busy = busy or (run is not None and proto.stage_of(run) in proto.IN_FLIGHT_STAGES)
        cost = 0.0
        for run in self._runs.values():
            created = getattr(run, "created_at", None)
            if created is None or created < self._opened_at:
                continue  # paid (or not) in an earlier session
            stage = proto.stage_of(run)
            if stage == "completed" or (getattr(run, "task_id", None) and stage not in ("failed", "cancelled")):
                cost += float(getattr(run, "cost_usd", 0.0) or 0.0)
        self.busy = busy
        self.session_cost = round(cost, 2)

    # ------------------------------------------------------------------ comparison & export
    def compare(self, *runs: Any) -> None:
        """Show 2 to 4 runs (Run objects or run ids) side by side; no arguments closes it."""
        if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
            runs = tuple(runs[0])
        if not runs:
            self.comparison = {}
            return
        resolved: list[Run] = []
        for ref in runs:
            run = self._lookup(ref)
            if run is None:
                raise ValueError(f"No run {ref!r} in this widget's history or store.")
            if all(r.run_id != run.run_id for r in resolved):
                resolved.append(run)
        if not 2 <= len(resolved) <= 4:
            raise ValueError(f"Compare takes 2 to 4 different runs (got {len(resolved)}).")
        self.selected = [r.run_id for r in resolved]
        self.comparison = proto.comparison(resolved)

    def _compared_runs(self) -> list["Run"]:
        runs = [self._lookup(i) for i in (self.comparison or {}).get("run_ids", [])]
        if not runs:
            raise InvalidInputError("Nothing is being compared: call widget.compare(run_a, run_b) first.")
        return [r for r in runs if r is not None]

    def export_comparison(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the current comparison as one side-by-side MP4 (labelled with what differs)."""
        from .export import export_run_comparison

        runs = self._compared_runs()
        out = Path(path) if path is not None else self._exports_dir() / f"comparison-{runs[0].run_id[:8]}.mp4"
        return export_run_comparison(runs, out)

    def export_run_card(self, run: "Run | str | None" = None, folder: str | os.PathLike[str] | None = None) -> Path:
        """Write a run card (.zip: card.json + poster.jpg) for sharing; default: the current run."""
        from .export import export_run_card

        target = self._lookup(run if run is not None else self._current)
        if target is None:
            raise ValueError("No run to export yet.")
        return export_run_card(target, folder if folder is not None else self._exports_dir())

    def _exports_dir(self) -> Path:
        return Path(self._store.folder) / "exports"

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
        from .sweeps import plan_sweep, start_sweep

        base = self._input()
        plan = plan_sweep(
            base, prompt=prompt, negative_prompt=negative_prompt, duration=duration,
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

    def _on_sweep_change(self, sweep: "Sweep") -> None:
        if sweep is not self._sweep:
            return
        try:
            info = sweep.summary()
            info["run_ids"] = [i for i in info.get("run_ids", []) if i][: 100]
            self.sweep_info = info
            if info.get("state") == "done" and not self.comparison.get("sweep_id") == sweep.sweep_id:
                finished = [r for r in sweep.runs if proto.stage_of(r) == "completed"][:4]
                if len(finished) >= 2:
                    self.compare(*finished)
                    self.comparison = {**self.comparison, "sweep_id": sweep.sweep_id}
        except Exception:
            log.exception("sweep update failed")

    # ------------------------------------------------------------------ messages
    def _post(self, content: dict, buffers: list[bytes] | None = None) -> None:
        self.send(content, buffers or None)

    def _send_file(self, kind: str, key: str, data: bytes, mime: str, **extra: Any) -> None:
        """Bytes to the browser in chunks small enough for every frontend (Colab: ~1 MB)."""
        pieces = proto.chunks(data)
        for index, piece in enumerate(pieces):
            self._post(
                {"type": kind, "key": key, "index": index, "count": len(pieces), "size": len(data), "mime": mime, **extra},
                [piece],
            )

    def _on_input_edit(self, change: dict) -> None:
        if self.input_error and self._images["start"] is not None:
            self.input_error = ""

    @t.validate("duration")
    def _check_duration(self, proposal: dict) -> int:
        value = proposal["value"]
        if not self.min_duration <= value <= self.max_duration:
            raise t.TraitError(
                f"duration must be whole seconds from {self.min_duration} to {self.max_duration} (got {value})."
            )
        return value

    def _on_msg(self, _widget: Any, content: Any, buffers: list | None) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        handler = getattr(self, f"_msg_{kind}", None) if isinstance(kind, str) and kind.isidentifier() else None
        if handler is None:
            return
        try:
            handler(content, list(buffers or []))
        except Exception as exc:
            log.exception("widget message %r failed", kind)
            self._post({"type": "error", "message": f"Something went wrong in the kernel: {exc}"})

    def _msg_hello(self, content: dict, buffers: list) -> None:
        for slot in proto.SLOTS:
            self._send_thumb(slot)

    def _slot(self, content: dict) -> str:
        slot = content.get("slot")
        if slot not in proto.SLOTS:
            raise ValueError(f"unknown image slot {slot!r}")
        return str(slot)

    def _msg_upload(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        if not buffers:
            self._post({"type": "error", "slot": slot, "message": "The image arrived empty; try again."})
            return
        name = str(content.get("name") or "image")[:120]
        size = content.get("size") if isinstance(content.get("size"), int) else None
        try:
            self._set_image(slot, bytes(buffers[0]), name=name, size=size)
        except InvalidInputError as exc:
            self._post({"type": "error", "slot": slot, "message": str(exc)})

    def _msg_image_url(self, content: dict, buffers: list) -> None:
        slot = self._slot(content)
        url = str(content.get("url") or "").strip()
        if not url.lower().startswith(("http://", "https://")):
            self.input_error = "An image URL must start with http:// or https://."
            self._post({"type": "error", "slot": slot, "message": self.input_error})
            return
        try:
            self._set_image(slot, url)
        except InvalidInputError as exc:
            self._post({"type": "error", "slot": slot, "message": str(exc)})

    def _msg_clear_image(self, content: dict, buffers: list) -> None:
        self._set_image(self._slot(content), None)

    def _msg_generate(self, content: dict, buffers: list) -> None:
        request_id = str(content.get("request_id") or "")[:80]
        if request_id:
            if request_id in self._seen_requests:  # a double click or a second view: one task
                return
            self._seen_requests[request_id] = None
            while len(self._seen_requests) > SEEN_REQUESTS:
                self._seen_requests.popitem(last=False)
        reply = {"type": "error", "request_id": request_id}
        if self.busy:
            self._post({**reply, "message": "A submission is already in flight; wait until it has been accepted."})
            return
        try:
            for name in ("prompt", "negative_prompt"):
                if isinstance(content.get(name), str):
                    setattr(self, name, content[name])
            if isinstance(content.get("duration"), int):
                self.duration = content["duration"]
            run = self.generate()
        except (InvalidInputError, t.TraitError) as exc:
            self.input_error = str(exc)
            self._post({**reply, "message": str(exc)})
            return
        except Exception as exc:
            log.exception("generate failed")
            self._post({**reply, "message": f"Could not start the run: {exc}",
                        "hint": "Nothing was sent. Try again; if it keeps failing, restart the kernel."})
            return
        self._post({"type": "generated", "request_id": request_id, "run_id": run.run_id})

    def _msg_cancel(self, content: dict, buffers: list) -> None:
        self.cancel(content.get("run_id") or None)

    def _msg_show(self, content: dict, buffers: list) -> None:
        run = self._lookup(content.get("run_id"))
        if run is not None:
            self._current = run.run_id
            self._update_status(run)

    def _msg_compare(self, content: dict, buffers: list) -> None:
        ids = [str(i) for i in (content.get("run_ids") or [])][:4]
        try:
            self.compare(*ids)
        except ValueError as exc:
            self._post({"type": "error", "message": str(exc)})

    def _msg_video(self, content: dict, buffers: list) -> None:
        run_id = str(content.get("run_id"))
        run = self._lookup(run_id)
        path = getattr(run, "video_path", None) if run is not None else None
        if not path or not Path(path).is_file():
            self._post({"type": "video_error", "run_id": run_id,
                        "message": "This run's video is not in the local cache (it may have been pruned)."})
            return
        self._send_file("video", run_id, Path(path).read_bytes(), "video/mp4", run_id=run_id, nonce=content.get("nonce"))

    def _msg_posters(self, content: dict, buffers: list) -> None:
        for run_id in list(content.get("run_ids") or [])[: proto.HISTORY_LIMIT]:
            run = self._lookup(str(run_id))
            poster = self._poster(run) if run is not None else None
            if poster:
                self._post({"type": "poster", "run_id": run.run_id, "mime": "image/jpeg"}, [poster])

    def _msg_history(self, content: dict, buffers: list) -> None:
        before = content.get("before")
        if isinstance(before, int):
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, before=before)
        else:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, offset=max(0, int(content.get("offset") or 0)))
        for run in runs:
            self._runs.setdefault(run.run_id, run)
        self._post({"type": "history_page", "total": int(self._store.count()), "runs": [proto.run_card(r) for r in runs]})

    def _msg_sweep(self, content: dict, buffers: list) -> None:
        sweep = self._sweep
        if sweep is None or content.get("sweep_id") != sweep.sweep_id:
            return
        if content.get("action") == "confirm":
            sweep.confirm()
        elif content.get("action") == "cancel":
            sweep.cancel()
            if not sweep.runs:
                self._sweep, self.sweep_info = None, {}
        self._on_sweep_change(sweep)

    def _msg_export(self, content: dict, buffers: list) -> None:
        what = content.get("what")
        if what == "comparison":
            job, name, mime = self.export_comparison, "comparison.mp4", "video/mp4"
        elif what == "card":
            run_id = content.get("run_id")
            job, name, mime = (lambda: self.export_run_card(run_id)), "run-card.zip", "application/zip"
        else:
            return
        self._spawn(self._export(job, name, mime))

    async def _export(self, job: Any, name: str, mime: str) -> None:
        """Encode in a worker thread (the kernel stays responsive), then download in the browser."""
        self.notice = "Exporting\u2026"
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, job)
        except Exception as exc:
            self.notice = ""
            self._post({"type": "error", "message": f"Export failed: {exc}"})
            return
        self.notice = f"Saved {path} in the kernel's folder; downloading it in the browser."
        self._send_file("download", Path(path).name, Path(path).read_bytes(), mime, name=Path(path).name or name)

    def _poster(self, run: "Run") -> bytes | None:
        """A small JPEG for cards and the player: the start image, else the video's first frame."""
        start, _end = proto.image_keys(run)
        key = start or run.run_id
        if key in self._posters:
            self._posters.move_to_end(key)
            return self._posters[key]
        image = None
        try:
            path = self._store.image_path(start) if start else None
            if path is not None:
                from PIL import Image

                with Image.open(path) as opened:
                    image = opened.convert("RGB")
            elif getattr(run, "video_path", None) and Path(run.video_path).is_file():
                image = proto.first_frame(run.video_path)
                key = run.run_id
        except Exception as exc:
            log.debug("no poster for %s: %s", run.run_id, exc)
        if image is None:
            return None
        poster = proto.thumbnail_jpeg(image, POSTER_SIDE, quality=75)
        self._posters[key] = poster
        while len(self._posters) > 200:
            self._posters.popitem(last=False)
        return poster

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the widget and, when the widget made it, its client (the store stays open and
        unfinished runs stay stored: the next widget resumes them)."""
        if getattr(self, "_owns_client", False) and _running_loop() is not None:
            # With no loop (interpreter exit) there is nothing to await on; sockets close anyway.
            self._spawn(_awaited(self._client.close()))
        super().close()
