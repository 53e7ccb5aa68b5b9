"""A static snapshot of the widget, saved in its output beside the widget view.

Why: a notebook opened later, without a kernel, cannot draw the widget. What Jupyter front-ends
then show for its output (checked in JupyterLab 4 and Notebook 7 with ipywidgets 8):

- a notebook that is not trusted (opened on another machine or by another person) renders only
  "safe" MIME types: the text/html snapshot below, instead of the bare text/plain repr;
- nbconvert's HTML (and viewers built on it) without saved widget state: the same text/html;
- a trusted notebook: the widget renderer wins whatever else the output holds and shows
  "Loading widget..." with no kernel, "Error displaying widget: model not found" with a
  fresh kernel; a notebook saved with widget state draws the widget itself from that state.

The snapshot is what the widget showed when its cell ran: the current run's status, prompt and
facts. By default it holds no image: saved notebooks carry no image or video bytes (the
notebook hygiene promise), and a poster is usually the start image, often a personal photo,
which a shared notebook would hand to every reader. `FramepackWidget(poster_in_notebook=True)`
adds the run's poster, at most `POSTER_SIDE` px and `POSTER_BYTES` bytes of JPEG.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

from ..constants import cost_usd
from ._protocol import thumbnail_jpeg

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run

__all__ = ["POSTER_BYTES", "POSTER_SIDE", "snapshot_html", "snapshot_poster", "snapshot_text"]

RUN_THE_CELL = "The live widget needs a running kernel: run this cell to use it again."
PROMPT_CHARS = 400
#: The opt-in poster: long side in pixels, and the most JPEG bytes it may take in the notebook.
POSTER_SIDE = 240
POSTER_BYTES = 12 * 1024


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
    facts = [str(run.stage).replace("_", " ")]
    if run.duration:
        facts.append(f"{run.duration} s")
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
    """The HTML snapshot: escaped text, small inline styles that survive sanitising, and the
    run's poster only when one is given (from `snapshot_poster`)."""
    e = html.escape
    parts = [
        '<div class="fpw-snapshot" style="border:1px solid #bdbdbd;border-radius:6px;padding:8px 12px;max-width:720px">',
        f"<p><strong>FramePack widget</strong> \u2014 a snapshot. {e(RUN_THE_CELL)}</p>",
    ]
    if poster and run is not None:
        src = "data:image/jpeg;base64," + base64.b64encode(poster).decode("ascii")
        parts.append(f'<img alt="{e("Poster of the last run")}" src="{src}" style="display:block;max-width:{POSTER_SIDE}px">')
    if simulated:
        parts.append(f"<p><em>{e(backend_label)}</em></p>")
    parts += [f"<p>{e(label)}: <strong>{e(text)}</strong></p>" if label == "Last run" else f"<p>{e(label)}: {e(text)}</p>"
              for label, text in _rows(run, prompt)]
    parts.append(f"<p>{_count(total)}</p></div>")
    return "\n".join(parts)
