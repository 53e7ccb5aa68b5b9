"""`FramepackWidget`: FramePack image-to-video in a notebook cell.

- `_widget`: the widget: its synced traits, its public methods, and the wiring of its parts.
  Nothing else in this package imports it; each part gets only what it needs.
- The parts that own state: `_slots` (image slots, the inputs' error), `_index` (the runs it
  knows, history cards, the current run, the session's spend), `_comparison`,
  `_sweep_panel`, `_timelines` (the Timeline panel, chains, Extend's last frame), `_queue`
  (runs never sent), `_exports`, `_posters`, `_outbox` (custom messages out, the notice line).
- `_messages`: one handler per browser message; `_uploads`: chunked image uploads.
- `_protocol`: the wire (every message listed) and what is cut from `Run.to_dict()`: cards,
  status, the comparison grid, the timeline panel.
- `_snapshot`: the notebook snapshot beside the widget; `_background`: tasks on the loop;
  `_embedded`: the frontend files and the offline simulator a widget without a key starts.
"""

from __future__ import annotations

from ._widget import SIMULATOR_LABEL, FramepackWidget

__all__ = ["FramepackWidget", "SIMULATOR_LABEL"]
