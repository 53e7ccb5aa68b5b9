"""The widget's synced state: every trait the browser draws from or edits.

Each trait says its type, its default and what the frontend draws from it (traitlets'
`help`, which `FramepackWidget.class_traits()` and the docs show). Values are small and
JSON-safe: bytes never go in a trait (they travel as message buffers). Most traits mirror a
part that owns the value (named in its help: `ImageSlots`, `RunIndex`, ...); only the
inputs the person edits (`prompt`, `negative_prompt`, `duration`, `loop`, and `selected`,
which both sides set) are written by the browser.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from ..constants import (
    COST_PER_SECOND,
    DEFAULT_MAX_SIDE,
    FPS,
    MAX_COMPARED,
    MAX_DURATION,
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    MESSAGE_CHUNK_BYTES,
    MIN_DURATION,
)
from ..errors import InvalidInputError
from ._embedded import asset
from ._slots import MAX_BATCH_IMAGES

__all__ = ["InvalidTraitError", "WidgetState"]


class InvalidTraitError(InvalidInputError, t.TraitError):
    """A trait set to a value the widget cannot use (nothing was sent); the message gives the range."""


class WidgetState(anywidget.AnyWidget):
    """The synced traits of `FramepackWidget` (its frontend module and styles included)."""

    _esm = asset("widget.js")
    _css = asset("widget.css")

    # ------------------------------------------------------------------ what the person edits
    prompt = t.Unicode("", help="str, default \"\": the prompt. The Prompt box shows and edits it.").tag(sync=True)
    negative_prompt = t.Unicode(
        "", help="str, default \"\": what the video should avoid. The Negative prompt box shows and edits it.",
    ).tag(sync=True)
    duration = t.Int(
        MIN_DURATION,
        help=f"int seconds, default {MIN_DURATION}, from min_duration to max_duration: the video's length. The "
             "Duration slider shows and edits it; the cost beside Generate follows it.",
    ).tag(sync=True)
    loop = t.Bool(
        False, help="bool, default False: Loop. The start image is the end image too (the video returns to where it "
                    "began), for runs, sweeps and the last segment of a timeline; runs remember it (their cards say "
                    "\"Loop\"). The Loop switch beside the End image slot shows and edits it, and the slot shows the "
                    "start image while it is on; setting an end image turns it off.",
    ).tag(sync=True)
    # ------------------------------------------------------------------ fixed numbers the browser needs
    _cost_per_second = t.Float(
        COST_PER_SECOND, help=f"float US dollars, default {COST_PER_SECOND}: PiAPI's price per second of video; the "
                              "browser prices Generate, sweeps and timelines with it.",
    ).tag(sync=True)
    _min_duration = t.Int(MIN_DURATION, help=f"int seconds, default {MIN_DURATION}: the Duration slider's lowest "
                                            "value (and timeline segments').").tag(sync=True)
    _max_duration = t.Int(MAX_DURATION, help=f"int seconds, default {MAX_DURATION}: the Duration slider's highest "
                                            "value (and timeline segments').").tag(sync=True)
    _limits = t.Dict(
        {"fps": FPS, "max_side": DEFAULT_MAX_SIDE, "max_prompt_chars": MAX_PROMPT_CHARS, "max_compared": MAX_COMPARED,
         "chunk_bytes": MESSAGE_CHUNK_BYTES, "max_upload_bytes": MAX_UPLOAD_BYTES, "max_batch_images": MAX_BATCH_IMAGES},
        help="dict, default from constants.py: the other fixed numbers the browser needs (it has no literal copy "
             "of any): frames per second, the long side it downscales uploads to, the prompt's length, how many "
             "runs a comparison takes, a message chunk's and an upload's size, how many images one drop may "
             "hold (an image sweep).",
    ).tag(sync=True)
    # ------------------------------------------------------------------ the backend
    backend = t.Unicode("simulator", help="\"simulator\" or \"piapi\", default \"simulator\": which service runs "
                                          "the videos; the header badge and every price say \"simulated\" for the "
                                          "simulator.").tag(sync=True)
    _backend_label = t.Unicode("", help="str, default \"\" (set when the widget opens): the header badge's text "
                                       "(the simulator's says its videos are synthetic).").tag(sync=True)
    balance = t.Unicode("", help="str, default \"\": the PiAPI account's balance as PiAPI reported it (\"$12.50\", "
                                 "\"1,200 credits\"), shown in the header; empty for the simulator.").tag(sync=True)
    # ------------------------------------------------------------------ mirrored from the parts
    _start_image_info = t.Dict(
        allow_none=True, default_value=None,
        help="dict or None, default None: the start image's name, width, height, size (and url), and where it came "
             "from (origin: \"last frame of run #3\", back: the name of the image before, which \"back to\" "
             "restores); the Start image slot shows them beside its thumbnail, and Generate stays off without it. "
             "From ImageSlots.",
    ).tag(sync=True)
    _end_image_info = t.Dict(allow_none=True, default_value=None,
                            help="dict or None, default None: the same for the End image slot. From ImageSlots.",
                            ).tag(sync=True)
    _input_error = t.Unicode("", help="str, default \"\": what is wrong with the inputs (nothing was sent), shown "
                                     "under them. From ImageSlots.").tag(sync=True)
    busy = t.Bool(False, help="bool, default False: a Generate is still being submitted; the browser keeps the "
                              "Generate button off. From RunIndex.").tag(sync=True)
    status = t.Dict(help="dict, default {}: the current run's live status (stage, percent or an estimate, "
                         "elapsed, ETA, last log lines, error and hint, whether it has a video); the status line, "
                         "progress bar and player draw it. From RunIndex.").tag(sync=True)
    _history = t.List(help="list of dicts, default []: the newest run cards (at most 50; older pages come as "
                          "messages), drawn as the History list. From RunIndex.").tag(sync=True)
    _history_total = t.Int(0, help="int, default 0: runs the history shows in all (this notebook's, or the "
                                  "store's), for \"History (n runs)\" and paging. From RunIndex.").tag(sync=True)
    _history_scope = t.Dict(help="dict, default {}: this notebook's file name and the counts of its runs and of "
                                "all runs (\"notebook\", \"mine\", \"all\"), drawn as the History head's toggle; "
                                "{} when the kernel does not know its notebook (the history shows every run). "
                                "From RunIndex.").tag(sync=True)
    _history_all = t.Bool(False, help="bool, default False: the history shows every run of the store, not only this "
                                     "notebook's (the History head's toggle sets it too). RunIndex's, both ways."
                         ).tag(sync=True)
    selected = t.List(t.Unicode(), help="list of run ids, default []: the runs picked on their cards (the browser "
                                        "sets it too); Compare and Share use them. From Comparison.").tag(sync=True)
    _comparison = t.Dict(help="dict, default {}: the comparison grid (run ids, one item per run with its prompt "
                             "diffed against the first, and which fields differ); empty closes it. From "
                             "Comparison.").tag(sync=True)
    session_cost = t.Float(0.0, help="float US dollars, default 0.0: what this session's runs cost (or would, on "
                                     "the simulator), charged or on their way (the runs the day's budget counts), "
                                     "shown in the header as \"Session $x\". From RunIndex.").tag(sync=True)
    _spend = t.Dict(help="dict, default {}: today's spend in this run store on this backend and the day's budget "
                        "(\"today\", \"budget\": dollars, budget None without one), shown in the header as "
                        "\"Today $x of $y\". From RunIndex (runs.Budget).").tag(sync=True)
    _sweep_info = t.Dict(help="dict, default {}: the sweep panel (a planned sweep's count, price and description, "
                             "then its progress); empty hides it. From SweepPanel.").tag(sync=True)
    _timeline_info = t.Dict(help="dict, default {}: the Timeline panel (the plan or the segments' runs with their "
                                "status, totals, whether the stitched video exists). From TimelinesPanel."
                           ).tag(sync=True)
    _notice = t.Unicode("", help="str, default \"\": one notice line at the widget's top (a run being extended, a "
                                "damaged history moved aside), never naming a local folder. From Notice."
                       ).tag(sync=True)
    _queued = t.Dict(help="dict, default {}: runs a stopped kernel stored but never sent (count, cost, text); the "
                         "banner offers Send and Discard. Sent only when the person says. From QueuedRuns."
                    ).tag(sync=True)
    _class = t.Dict(help="dict, default {} (outside a class): in a class on a JupyterHub (the classroom service), "
                        "the student's class budget (\"left\", \"total\" dollars), whether the teacher paused the "
                        "class, and the task ids of the runs shared with the class; the header shows \"Class budget: "
                        "$2.10 of $3.00 left\", run cards \"Share with class\". From ClassPanel.").tag(sync=True)

    @t.validate("duration")
    def _check_duration(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if not self._min_duration <= value <= self._max_duration:
            raise InvalidTraitError(
                f"duration must be whole seconds from {self._min_duration} to {self._max_duration} (got {value})."
            )
        return value
