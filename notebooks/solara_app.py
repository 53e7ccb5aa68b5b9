"""The FramePack widget as a Solara web app: `solara run notebooks/solara_app.py`.

Each browser tab gets its own widget (Solara runs `Page` once per visitor); the runs are kept
in FRAMEPACK_HOME (default: .framepack/ in the folder you started solara from). Without
PIAPI_API_KEY it uses the built-in offline simulator: synthetic videos, no cost, and the
widget says so. Offline, install `solara-assets` of the same version as solara: it holds the
web files solara would otherwise fetch from a CDN.
"""

import solara

from framepack_widgets import FramepackWidget


@solara.component
def Page() -> None:
    solara.Title("FramePack image-to-video")
    # Plain text: solara.Markdown would load KaTeX from a CDN, which solara-assets does not carry.
    solara.Text(
        "Drop a picture on Start image, write a prompt and press Generate; tick two or more run"
        " cards and press Compare to play them side by side, in lock-step."
    )
    widget = solara.use_memo(FramepackWidget, dependencies=[])  # one widget per visitor, kept across renders
    solara.display(widget)
