"""A run shown to a person outside the widget: an inline player (`Run.show()`), a line of
status when there is no video, and a Python snippet that reproduces it (`Run.code()`).

Everything here reads the run's one serialisation (`Run.to_dict()`), so it needs no `Run`;
IPython is imported inside `show`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["code", "show", "status_text"]

#: Where a stored image's file is, by its sha256 (`RunStore.image_path`).
ImagePath = Callable[[str], "Path | None"]


def show(record: Mapping[str, Any]) -> None:
    """Display an inline player: the local video embedded in the page (else the run's status)."""
    from IPython.display import Video, display

    path = record.get("video_path")
    if not path or not Path(path).exists():
        display(status_text(record))
        return
    display(Video(str(path), embed=True, mimetype="video/mp4", html_attributes="controls loop muted playsinline"))


def run_label(record: Mapping[str, Any]) -> str:
    """"#3" (the run's number in its store), or the id's first 8 characters before it is stored."""
    seq = record.get("seq")
    return f"#{seq}" if seq is not None else str(record["run_id"])[:8]


def status_text(record: Mapping[str, Any]) -> str:
    """Where the run is, its error and what to do next, in a few lines of text."""
    text = f"Run {run_label(record)}: {record['stage']}"
    if record.get("error"):
        text += f": {record['error']}"
    if record.get("hint"):
        text += f"\n{record['hint']}"
    elif record["stage"] == "completed":
        text += " (the video file is no longer in the store)"
    return text


def code(record: Mapping[str, Any], image_path: ImagePath | None = None) -> str:
    """A Python snippet that reproduces the run with `Client` and `FramepackInput`.

    Images are referenced by their file in the store (`image_path`); the API key is never included.
    """
    params = record["params"]
    label = run_label(record)

    def image_expr(key: str) -> str | None:
        info = params.get(key)
        if not info:
            return None
        if info.get("url"):
            return repr(str(info["url"]))
        sha = info.get("sha256")
        path = image_path(sha) if (image_path is not None and sha) else None
        return repr(str(path)) if path is not None else f"'<{key.replace('_', ' ')}: sha256 {sha}>'"

    args = [f"    prompt={record['prompt']!r},", f"    start_image={image_expr('start_image')},"]
    end = image_expr("end_image")
    if end is not None:
        args.append(f"    end_image={end},")
    if record["negative_prompt"]:
        args.append(f"    negative_prompt={record['negative_prompt']!r},")
    args.append(f"    duration={record['duration']!r},")
    encoding = params.get("image_encoding")
    if encoding and encoding != "base64":
        args.append(f"    image_encoding={encoding!r},")
    if record.get("loop"):
        args.append("    # Loop: the video ends on its start image.")
    lines = [f"# Run {label} (run id {record['run_id']})", "from framepack_widgets import Client, FramepackInput", "",
             "inp = FramepackInput(", *args, ")", ""]
    if record["simulated"]:
        lines += [
            "# This run used the offline simulator (its video is not FramePack's).",
            "from framepack_widgets.simulator import Simulator",
            "",
            "with Simulator() as sim, Client(sim.api_key, base_url=sim.base_url) as client:",
        ]
    else:
        lines += [f"# Costs ${record['cost_usd']:.2f} at PiAPI. The key is read from PIAPI_API_KEY.",
                  "with Client() as client:"]
    lines += ["    task = client.generate(inp)", f"    client.download(task, 'run-{label.lstrip('#')}.mp4')", ""]
    return "\n".join(lines)
