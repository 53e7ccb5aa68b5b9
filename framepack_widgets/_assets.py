"""Where the frontend files are: the wheel's static/ copy, else js/ of a source checkout.

Two readers: the widget (its ES module and CSS) and the shared gallery (which inlines the
same files into its page), so the lookup lives below both.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["frontend_file"]


def frontend_file(name: str) -> Path | None:
    """The shipped frontend file `name` (e.g. "widget.js"), or None when it is missing."""
    package = Path(__file__).resolve().parent
    for path in (package / "static" / name, package.parent / "js" / name):
        if path.is_file():
            return path
    return None
