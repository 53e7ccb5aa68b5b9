import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell
def _(mo):
    mo.md("""
    # FramePack image-to-video, in marimo

    The same widget as in Jupyter, wrapped with `mo.ui.anywidget`. Without `PIAPI_API_KEY`
    it uses the built-in offline simulator (synthetic videos, no cost; a badge says so).
    Drop an image on **Start image** (a sample is already there), write a prompt, press
    **Generate**; tick two run cards and press **Compare** to play them side by side.
    """)
    return


@app.cell
def _():
    from PIL import Image, ImageDraw

    def sample_scene(width=960, height=640):
        """A sunset landscape drawn with PIL, so this notebook needs no download."""
        img = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(img)
        for y in range(height):  # sky
            t = y / height
            draw.line([(0, y), (width, y)], fill=(int(120 + 130 * t), int(70 + 90 * t), int(170 - 60 * t)))
        draw.ellipse([0.62 * width, 0.16 * height, 0.78 * width, 0.40 * height], fill=(255, 222, 95))  # sun
        draw.rectangle([0, 0.66 * height, width, height], fill=(46, 150, 96))  # meadow
        draw.rectangle([0.14 * width, 0.56 * height, 0.30 * width, 0.76 * height], fill=(214, 72, 58))  # house
        return img

    scene = sample_scene()
    return (scene,)


@app.cell
def _(mo, scene):
    from framepack_widgets import FramepackWidget

    w = FramepackWidget()
    w.start_image = scene
    w.prompt = "the camera zooms in slowly on the red house"
    widget = mo.ui.anywidget(w)
    widget
    return


@app.cell
def _(mo):
    mo.md("""
    Everything the buttons do works from Python too: `w.generate()`, `w.runs`,
    `w.compare(*w.runs[-2:])`, and `w.export_html("gallery")` to share the runs as a
    folder that plays in any browser.
    """)
    return


if __name__ == "__main__":
    app.run()
