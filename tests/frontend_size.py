"""What the shipped frontend costs a user: the budget test (tests/test_frontend_build.py)
and bench/bench_widget.py read the same figures from here.

The budget counts the built, minified files a browser is given (framepack_widgets/static/),
not the sources: anywidget stores `_esm` and `_css` in every widget instance's saved state,
so these bytes are also what each widget adds to a notebook saved with widget state.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "framepack_widgets" / "static"
#: Shipped JS + CSS, minified (issue 16).
BUNDLE_BUDGET = 45 * 1024
#: The same measure on the last unbundled frontend (js/widget.js + js/widget.css as they were
#: shipped, unminified), for comparison.
UNMINIFIED_BEFORE = 61_422
#: ... and what one widget instance carried of them in a saved notebook (measured on 9168c6d).
PER_INSTANCE_BEFORE = 63_891
SHIPPED = ("widget.js", "widget.css")


def shipped_sizes() -> dict[str, int]:
    """Bytes of each shipped widget file, as built."""
    return {name: (STATIC / name).stat().st_size for name in SHIPPED}


def gzip_size() -> int:
    """JS + CSS, each gzipped (what a server that compresses would send), for information."""
    return sum(len(gzip.compress((STATIC / name).read_bytes(), 9)) for name in SHIPPED)


def per_instance_bytes() -> int:
    """What one widget's `_esm` and `_css` add to a saved notebook: the files as JSON strings,
    as nbformat writes them (UTF-8, not ASCII-escaped)."""
    texts = ((STATIC / name).read_text(encoding="utf-8") for name in SHIPPED)
    return sum(len(json.dumps(text, ensure_ascii=False).encode()) for text in texts)


def report() -> str:
    sizes = shipped_sizes()
    total = sum(sizes.values())
    parts = ", ".join(f"{name} {n:,} B" for name, n in sizes.items())
    return (
        f"shipped frontend, minified: {parts}; {total:,} B in all ({total / 1024:.1f} KB of "
        f"{BUNDLE_BUDGET / 1024:.0f} KB); gzip {gzip_size():,} B; per widget in a saved notebook "
        f"{per_instance_bytes():,} B (before: {UNMINIFIED_BEFORE:,} B unminified, {PER_INSTANCE_BEFORE:,} B per widget)"
    )
