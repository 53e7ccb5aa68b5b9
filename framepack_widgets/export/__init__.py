"""Sharing runs: a side-by-side comparison MP4 (`_side_by_side`) and a run card (`_card`).

Everything here works on finished runs' local videos, so it costs nothing and needs no key;
PyAV, PIL and numpy load only inside the functions that need them.
"""

from ._card import CARD_FORMAT, CARD_VERSION, export_run_card, poster_frame, read_run_card, run_card
from ._side_by_side import export_comparison, export_run_comparison, wrap_label

__all__ = [
    "export_comparison",
    "export_run_comparison",
    "run_card",
    "export_run_card",
    "poster_frame",
    "read_run_card",
    "wrap_label",
    "CARD_FORMAT",
    "CARD_VERSION",
]
