"""The built frontend: framepack_widgets/static/, made from js/src/ by js/build.mjs.

The Python build runs that build (js/hatch_build.py), so an installed package, a wheel and
an editable install from a clone all have it. Two readers: the widget (its ES module and
CSS, via anywidget) and the shared gallery (which inlines the gallery's built script and
CSS into its page), so the lookup lives below both. There is no fallback to js/src/: the
sources are modules for the bundler, not what a browser is given.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUILD_HINT", "STATIC", "frontend_file"]

#: Where the built files are.
STATIC = Path(__file__).resolve().parent / "static"

#: What to do about a missing build, for the messages that report one.
BUILD_HINT = (
    "reinstall framepack_widgets (pip install . builds it; it needs Node.js and npm), "
    "or from a clone run `bash .ci/setup` (or `npm ci && npm run build` in js/)"
)


def frontend_file(name: str) -> Path | None:
    """The built frontend file `name` (e.g. "widget.js"), or None when it was not built."""
    path = STATIC / name
    return path if path.is_file() else None
