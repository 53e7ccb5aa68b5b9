"""The static snapshot: an output of its own beside each display of the widget, kept in step
with the current run, for wherever the widget cannot be drawn (a notebook opened later without
a kernel, on another machine, in nbconvert's HTML).

Why an output of its own: JupyterLab's widget renderer draws the live view again whenever its
output is updated, so the snapshot cannot ride in the widget's output and still follow the runs.
`NotebookSnapshot` displays it with a display id and updates it (`update_display`) when what it
says changes: a run's stage, the current run, its poster. What a saved notebook then shows:

- while the widget is drawn and its kernel answers, the snapshot steps aside (`STYLE`);
- a notebook saved with widget state, reopened without a kernel: the widget is drawn from that
  state, gets no answer, shrinks to its header and "No answer from the kernel" line (the view
  adds `fpw-quiet`), and the snapshot shows below it;
- a trusted notebook saved without widget state: JupyterLab's "Error displaying widget: model
  not found" gives way to the snapshot;
- a notebook that is not trusted (another machine or person): JupyterLab renders only safe MIME
  types, so the snapshot shows (sanitised: its `<style>` is dropped, its inline styles kept).

The snapshot says the current run's status, prompt and facts, and shows the run's poster (the
start image, or the video's first frame) as a JPEG of at most `POSTER_SIDE` px and
`POSTER_BYTES` bytes: the one image a saved notebook holds. `FramepackWidget(
poster_in_notebook=False)` keeps even that out (the poster is usually the start image, often a
personal photo, and a shared notebook hands it to every reader).
"""

from __future__ import annotations

import base64
import html
import io
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..constants import cost_usd
from ._protocol import thumbnail_jpeg

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run

__all__ = [
    "POSTER_BYTES", "POSTER_SIDE", "NotebookPoster", "NotebookSnapshot", "snapshot_html", "snapshot_poster", "snapshot_text",
]

RUN_THE_CELL = "The live widget needs a running kernel: run this cell to use it again."
PROMPT_CHARS = 400
#: The poster: long side in pixels, and the most JPEG bytes it may take in the notebook.
POSTER_SIDE = 240
POSTER_BYTES = 12 * 1024
#: Rules that decide which of the two outputs shows (the module docstring says when). Class
#: names are JupyterLab's and Notebook 7's output area; elsewhere only the first rule applies.
STYLE = (
    "<style>"
    ":root:has(.fpw-root:not(.fpw-quiet)) :is(.fpw-snapshot,"
    ".jp-OutputArea-child:has(>.jp-OutputArea-output>.fpw-snapshot)){display:none}"
    ".fpw-quiet>:not(.fpw-head,.fpw-notice){display:none}"
    ".jp-OutputArea-child:not(:has(.fpw-root)):has(+.jp-OutputArea-child>.jp-OutputArea-output>.fpw-snapshot)"
    "{display:none}"
    "</style>"
)


def snapshot_poster(jpeg: bytes | None) -> bytes | None:
    """The card poster made small enough for a notebook (None without one, or if even the
    lowest quality is too big)."""
    if not jpeg:
        return None
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as opened:
        image = opened.convert("RGB")
    for quality in (75, 60, 45):
        small = thumbnail_jpeg(image, POSTER_SIDE, quality=quality)
        if len(small) <= POSTER_BYTES:
            return small
    return None


def _clip(text: str, limit: int = PROMPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _facts(run: "Run") -> list[str]:
    facts = [f"run {run.label}", str(run.stage).replace("_", " ")]
    if run.duration:
        facts.append(f"{run.duration} s")
    if run.loop:
        facts.append("loop")
    facts.append(f"${cost_usd(run.duration):.2f}" + (" (simulated, nothing charged)" if run.simulated else ""))
    when = run.finished_at or run.created_at
    facts.append(when.strftime("%Y-%m-%d %H:%M UTC"))
    return facts


def _rows(run: "Run | None", prompt: str) -> list[tuple[str, str]]:
    """(label, text) of what the snapshot says about the current run (or the inputs)."""
    if run is None:
        return [("Prompt", _clip(prompt))] if prompt else []
    rows = [("Last run", " \u00b7 ".join(_facts(run))), ("Prompt", _clip(run.prompt))]
    if run.negative_prompt:
        rows.append(("Negative prompt", _clip(run.negative_prompt)))
    if run.error:
        rows.append(("Error", _clip(run.error, 300)))
    return rows


def _count(total: int) -> str:
    return f"{total} run{'' if total == 1 else 's'} in the history."


def snapshot_text(run: "Run | None", *, backend_label: str, total: int, prompt: str = "") -> str:
    """The plain-text snapshot (for viewers that show only text)."""
    lines = [f"FramePack widget ({backend_label}): a snapshot. {RUN_THE_CELL}"]
    lines += [f"{label}: {text}" for label, text in _rows(run, prompt)]
    return "\n".join([*lines, _count(total)])


def snapshot_html(run: "Run | None", *, backend_label: str, total: int, prompt: str = "", simulated: bool = False,
                  poster: bytes | None = None) -> str:
    """The HTML snapshot: `STYLE`, escaped text, small inline styles that survive sanitising,
    and the run's poster when one is given (from `snapshot_poster`)."""
    e = html.escape
    parts = [
        STYLE,
        '<div class="fpw-snapshot" style="border:1px solid #bdbdbd;border-radius:6px;padding:8px 12px;max-width:720px">',
        f"<p><strong>FramePack widget</strong> \u2014 a snapshot. {e(RUN_THE_CELL)}</p>",
    ]
    if poster and run is not None:
        src = "data:image/jpeg;base64," + base64.b64encode(poster).decode("ascii")
        parts.append(f'<img alt="{e("Poster of the last run")}" src="{src}" style="display:block;max-width:{POSTER_SIDE}px;margin:6px 0">')
    if simulated:
        parts.append(f"<p><em>{e(backend_label)}</em></p>")
    parts += [f"<p>{e(label)}: <strong>{e(text)}</strong></p>" if label == "Last run" else f"<p>{e(label)}: {e(text)}</p>"
              for label, text in _rows(run, prompt)]
    parts.append(f"<p>{_count(total)}</p></div>")
    return "\n".join(parts)


class NotebookSnapshot:
    """The snapshot output of one widget: displayed beside each of its views, updated in place.

    `render` returns the output's data (text/plain, text/html) from the widget's current state;
    `refresh` sends it again only when it changed, so a poll that changes nothing costs one
    string comparison and no message."""

    def __init__(self, render: Callable[[], dict[str, str]]) -> None:
        self._render = render
        self.display_id = f"fpw-snapshot-{uuid.uuid4().hex}"
        self._shown: dict[str, str] | None = None

    def display(self) -> None:
        from IPython.display import display

        self._shown = self._render()
        display(self._shown, raw=True, display_id=self.display_id)

    def refresh(self) -> None:
        if self._shown is None:
            return  # never displayed (marimo, plain Python): nothing to keep in step
        data = self._render()
        if data == self._shown:
            return
        from IPython.display import update_display

        self._shown = data
        update_display(data, raw=True, display_id=self.display_id)


class NotebookPoster:
    """The current run's poster made notebook-sized, once per image (not on every poll):
    its start image, else its video's first frame (the same choice as the cards' poster,
    which `card_poster` gives). None when `enabled` is false (`poster_in_notebook=False`)."""

    def __init__(self, card_poster: Callable[["Run"], bytes | None], *, enabled: bool = True) -> None:
        self._card_poster = card_poster
        self.enabled = enabled
        self._made: tuple[str, bytes | None] = ("", None)

    def for_run(self, run: "Run | None") -> bytes | None:
        if run is None or not self.enabled:
            return None
        key = run.start_image_sha or f"{run.run_id}:{run.video_path}"
        if self._made[0] != key:
            self._made = (key, snapshot_poster(self._card_poster(run)))
        return self._made[1]
