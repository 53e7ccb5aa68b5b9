"""`FramepackWidget`: FramePack image-to-video in a notebook cell.

- `_widget`: the widget's traits and public methods (what Python code calls).
- `_messages`: the browser's messages and the bytes sent back (uploads, videos, posters).
- `_protocol`: run cards, the live status and the comparison grid, cut from `Run.to_dict()`.
- `_embedded`: the frontend files and the offline simulator a widget without a key starts.
"""

from __future__ import annotations

from ._widget import SIMULATOR_LABEL, FramepackWidget

__all__ = ["FramepackWidget", "SIMULATOR_LABEL"]
