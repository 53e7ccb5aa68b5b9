"""What a saved notebook may hold: shared by the hygiene tests (nbclient and JupyterLab).

The one image allowed is the snapshot's poster (a data: URI of at most POSTER_BYTES of JPEG);
every other check for image or video bytes runs on the text with the posters taken out."""

from __future__ import annotations

import base64
import json
import re

POSTER = re.compile(r'alt=\\?"Poster of the last run\\?" src=\\?"data:image/jpeg;base64,([A-Za-z0-9+/=]+)\\?"')


def posters_taken_out(text: str) -> tuple[str, list[bytes]]:
    """`text` without the snapshot posters, and the posters' JPEG bytes."""
    posters = [base64.b64decode(m) for m in POSTER.findall(text)]
    return POSTER.sub("", text), posters


def widget_code_bytes(model_state: dict) -> int:
    """What one widget's saved state spends on its code: anywidget keeps `_esm` and `_css` in
    every instance's state, written as JSON strings (UTF-8, as nbformat writes them)."""
    return sum(len(json.dumps(model_state.get(key, ""), ensure_ascii=False).encode()) for key in ("_esm", "_css"))
