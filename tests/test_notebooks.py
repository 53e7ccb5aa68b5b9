"""The three notebooks, executed headless with nbclient against the offline simulator.

Why: the notebooks are the product's front door (the README's demo opens the
quickstart); they must run top to bottom on a fresh machine with no key and no network.
The hygiene test checks issue 3's promise about saved notebooks: with widget state saved,
ten runs add at most 100 KB, and neither video bytes nor the API key end up in the file; the
one image is the snapshot's poster of the last run (at most 12 KB, issue 11).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from framepack_widgets._assets import STATIC
from framepack_widgets.widget._snapshot import POSTER_BYTES
from saved_notebook import posters_taken_out, widget_code_bytes

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CELL_TIMEOUT = 300  # seconds per cell: generous for a 2-core CI box rendering H.264
# The teaching notebook is a 45-minute lesson (goals, explanation, four exercises, a discussion
# and teacher notes): more text than a quickstart, still no outputs.
LESSON_BYTES = 28_000

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fast_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this process's environment (the root conftest already removed any
    # PIAPI_* variable and gave FRAMEPACK_HOME a fresh folder). The simulator's realistic
    # clock (a 10 s video takes ~37 s) is sped up: every simulator the package starts by
    # itself (the widget's, the CLI's, the teaching demo's) reads FRAMEPACK_SIM_TIME_SCALE.
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "20")


def execute(name: str, workdir: Path, *, extra_cells: tuple[str, ...] = (), store_widget_state: bool = False) -> tuple[nbformat.NotebookNode, Path]:
    """Run notebooks/<name> in a copy under `workdir` (the kernel's cwd); returns it and where it was saved."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    shutil.copy2(NOTEBOOKS / name, path)
    nb = nbformat.read(path, as_version=4)
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
        store_widget_state=store_widget_state,
    )
    client.execute()
    nbformat.write(nb, path)
    return nb, path


def outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(str(out["data"].get("text/plain", "")))
    return "".join(parts)


def widget_views(nb: nbformat.NotebookNode) -> list[str]:
    return [
        out["data"][WIDGET_VIEW]["model_id"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if WIDGET_VIEW in out.get("data", {})
    ]


def cell_with(nb: nbformat.NotebookNode, snippet: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and snippet in cell.source:
            return cell
    raise AssertionError(f"no code cell contains {snippet!r}")


def no_errors(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{out.get('ename')}: {out.get('evalue')}"
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                assert "Traceback" not in out.get("text", ""), out["text"]


def test_notebooks_are_clean() -> None:
    """Committed notebooks carry no outputs, no execution counts and the python3 kernel."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3", path.name
        assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not cleared"
        limit = LESSON_BYTES if path.name == "teaching_demo.ipynb" else 20_000
        assert path.stat().st_size < limit, f"{path.name} is {path.stat().st_size} bytes: keep notebooks small"
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} >= {"quickstart.ipynb", "prompt_experiments.ipynb", "teaching_demo.ipynb"}


def test_quickstart_runs_offline(tmp_path: Path) -> None:
    nb, _ = execute("quickstart.ipynb", tmp_path)
    no_errors(nb)
    assert "(960, 640)" in outputs_text(cell_with(nb, "sample_scene()"))
    assert len(widget_views(nb)) == 1, "the quickstart shows one widget"
    # It explains what to do, and how to use the real service.
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for words in ("Start image", "prompt", "Generate", "Compare", "PIAPI_API_KEY"):
        assert words in text


def test_prompt_experiments_generates_and_compares(tmp_path: Path) -> None:
    nb, _ = execute("prompt_experiments.ipynb", tmp_path)
    no_errors(nb)
    lines = [ln for ln in outputs_text(cell_with(nb, "for prompt in prompts")).splitlines() if ln.strip()]
    assert len(lines) == 3 and all("completed" in ln for ln in lines), lines
    listing = outputs_text(cell_with(nb, "for run in w.runs"))
    assert listing.count(".mp4") == 3, listing
    assert len(widget_views(nb)) == 1


# What a student does in the lesson's exercises, as code: exercise 1's two prompts, exercise
# 2's negative prompt, exercise 3's loop, exercise 4's timeline (none of the optional runs).
# It prints what the lesson says the simulator will show, for the test to check.
LESSON_EXERCISES = """
import json
import numpy as np

def some_frames(path, wanted):
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
            if i >= max(wanted):
                return frames

def differ(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

zoom = studio.generate()  # each run takes the inputs as they are when it starts; all run at once
studio.prompt = "the door of the red house opens and the flowers sway in the wind"
content = studio.generate()
studio.negative_prompt = "camera movement, zoom, shaking, blurry"
negative = studio.generate()
looped = loop.generate()
plan.confirm()
for run in (zoom, content, negative, looped):
    await run
await plan

content_frames, negative_frames = (some_frames(r.video_path, {0, 150, 299}) for r in (content, negative))
zoom_first, zoom_last = some_frames(zoom.video_path, {0, 299})
loop_first, loop_last = some_frames(looped.video_path, {0, 299})
with av.open(str(plan.video_path)) as container:
    film_frames = container.streams.video[0].frames
print(json.dumps({
    "stages": [str(r.stage) for r in (zoom, content, negative, looped)] + [plan.status],
    "runs": len({r.run_id for r in (zoom, content, negative, looped)}),
    "spent": round(sum(r.cost_usd for r in (zoom, content, negative, looped)) + plan.total_cost_usd, 2),
    "negative_changes": max(differ(a, b) for a, b in zip(content_frames, negative_frames)),
    "loop_end_to_start": differ(loop_first, loop_last),
    "zoom_end_to_start": differ(zoom_first, zoom_last),
    "film_seconds": film_frames / 30,
}))
"""


def lesson_plan(nb: nbformat.NotebookNode) -> tuple[list[str], float, int]:
    """The lesson's table of parts: its rows, its total cost, its total minutes."""
    table = nb.cells[0].source
    total = re.search(r"\*\*total\*\* \| \*\*(\d+)\*\* \| \*\*\\\$(\d+\.\d\d)\*\*", table)
    assert total, "the lesson's table has no total row"
    rows = re.findall(r"^\| (\d\. [^|]+?) \| (\d+) \|", table, flags=re.M)
    assert sum(int(minutes) for _, minutes in rows) == int(total[1]), rows
    return [name for name, _ in rows], float(total[2]), int(total[1])


def test_teaching_demo_is_a_lesson_that_runs_offline(tmp_path: Path) -> None:
    nb, _ = execute("teaching_demo.ipynb", tmp_path, extra_cells=(LESSON_EXERCISES,))
    no_errors(nb)
    # The hand-made walk-through: the task's life, then its frames.
    statuses = re.findall(r"\b(pending|processing|completed)\b", outputs_text(cell_with(nb, "on_update=show_status")))
    assert statuses and statuses[0] == "pending" and statuses[-1] == "completed" and "processing" in statuses, statuses
    # The order only moves forward.
    order = {"pending": 0, "processing": 1, "completed": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    frames_cell = cell_with(nb, "av.open(")
    assert re.search(r"\b300 frames at 30 fps = 10\.0 s", outputs_text(frames_cell)), outputs_text(frames_cell)
    assert any("image/png" in out.get("data", {}) for out in frames_cell.outputs), "no contact sheet shown"

    # A 45-minute lesson: goals, then every part of its plan has a section of that name.
    parts, planned_cost, minutes = lesson_plan(nb)
    assert minutes == 45 and len(parts) >= 7, parts
    assert "By the end you can" in nb.cells[0].source
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    headings = re.findall(r"^## (.+)$", markdown, flags=re.M)
    for part in parts:
        assert any(h.startswith(part) for h in headings), f"no section for {part!r}: {headings}"
    assert sum("Exercise" in part for part in parts) >= 3, parts
    # JupyterLab and Voila read two $ in one paragraph as TeX ("$0.30 ... $0.60" turned into
    # italic maths): every price outside code is written \$ (JupyterLab), in a cell marked
    # mathjax_ignore (Voila, whose markdown reaches MathJax with the backslash gone).
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose = re.sub(r"```.*?```|`[^`]*`", "", cell.source, flags=re.S)
            assert not re.search(r"(?<!\\)\$", prose), f"an unescaped $ in: {cell.source[:80]!r}"
            assert "$" not in prose or cell.source.startswith('<div class="mathjax_ignore">'), cell.source[:80]

    # Under Voila only the outputs show: the lesson's own cells print nothing but what it
    # teaches (no warnings, no reprs), and every exercise's cell shows a widget.
    lesson_cells = [c for c in nb.cells if c.cell_type == "code"][:-1]
    for cell in lesson_cells:
        for out in cell.outputs:
            assert out.get("name") != "stderr", f"stderr in the lesson: {out.get('text', '')[:300]}"
    views = [[out["data"][WIDGET_VIEW]["model_id"] for out in c.outputs if WIDGET_VIEW in out.get("data", {})]
             for c in lesson_cells]
    views = [v for v in views if v]
    assert len(views) == 4 and all(len(v) == 1 for v in views), views  # one per exercise
    assert views[0] == views[1] and len({v[0] for v in views}) == 3, views  # exercise 2 goes on in 1's widget
    for cell in lesson_cells:
        if any(WIDGET_VIEW in out.get("data", {}) for out in cell.outputs):  # the widget and its snapshot, nothing else
            assert all(WIDGET_VIEW in out.get("data", {}) or "fpw-snapshot" in out.get("data", {}).get("text/html", "")
                       for out in cell.outputs), cell.outputs

    # The exercises, done as a student would, spend what the plan says and show on the
    # simulator what the lesson says they show.
    result = json.loads(outputs_text(nb.cells[-1]).strip().splitlines()[-1])
    print("the lesson's exercises on the simulator:", result)
    assert result["stages"] == ["completed"] * 4 + ["done"] and result["runs"] == 4, result
    assert result["spent"] == planned_cost <= 3.00, (result["spent"], planned_cost)
    assert result["negative_changes"] < 1.0, "the simulator should ignore the negative prompt"
    assert result["loop_end_to_start"] < 4.0 < 10.0 < result["zoom_end_to_start"], result  # H.264 noise vs a zoom
    assert result["film_seconds"] == pytest.approx(20, abs=0.05), result


# --------------------------------------------------------------------------- hygiene

TEN_RUNS = """
for i in range(10):
    w.prompt = f"the camera zooms in slowly, take {i + 1}"
    run = await w.generate()
    assert run.video_path is not None, run
w.compare(*w.runs[-2:])
print(len(w.runs), "runs")
"""

# Long unbroken base64 runs mean bytes were embedded; a few hundred characters is already
# far more than any id or hash in the widget's state.
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{400,}={0,2}")
MAGIC = ("ftyp", "/9j/", "iVBOR", "AAAAIGZ0eXA", "AAAAHGZ0eXA", "AAAAGGZ0eXA", "UklGR")


def test_saved_widget_state_stays_small_and_holds_no_bytes_or_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framepack_widgets.simulator import Simulator

    key = "sk-fake-" + secrets.token_hex(20)
    with Simulator(api_key=key, time_scale=100) as sim:
        # The widget makes its own client from the environment, exactly as it would with a
        # real key; the simulator stands in for PiAPI (the key never appears in any cell).
        monkeypatch.setenv("PIAPI_API_KEY", key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        base_nb, base_path = execute("quickstart.ipynb", tmp_path / "baseline", store_widget_state=True)
        nb, path = execute("quickstart.ipynb", tmp_path / "ten", extra_cells=(TEN_RUNS,), store_widget_state=True)
        creates = [r for r in sim.requests if r.endpoint == "create"]
    no_errors(nb)
    assert "10 runs" in outputs_text(nb.cells[-1])
    assert len(creates) == 10

    original = (NOTEBOOKS / "quickstart.ipynb").stat().st_size
    baseline, saved = base_path.stat().st_size, path.stat().st_size
    print(f"quickstart: {original} B clean, {baseline} B with widget state, {saved} B after ten runs "
          f"(+{(saved - baseline) / 1024:.1f} KB for the runs, +{(saved - original) / 1024:.1f} KB in all)")

    # The widget state really was saved (otherwise this test would prove nothing) ...
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    models = [m for m in state.values() if "_history" in m.get("state", {})]
    assert models, "no FramepackWidget model in the saved widget state"
    assert len(models[0]["state"]["_history"]) == 10
    # Each widget instance carries its own copy of the code: the minified bundle, not the sources.
    assert models[0]["state"]["_esm"] == (STATIC / "widget.js").read_text(encoding="utf-8")
    print(f"of that, the widget's code (_esm + _css, per widget instance): {widget_code_bytes(models[0]['state']) / 1024:.1f} KB")
    # ... and ten runs add at most 100 KB.
    assert saved - baseline <= 100 * 1024, f"ten runs added {(saved - baseline) / 1024:.1f} KB to the notebook"
    # Even counting the widget's own code (anywidget saves _esm and _css with the state).
    assert saved - original <= 100 * 1024, f"the saved notebook grew by {(saved - original) / 1024:.1f} KB"

    # The widget's output keeps its snapshot in step with the runs (update_display from the
    # kernel, applied by nbclient as by JupyterLab): the last run, and its poster, the one image.
    snapshots = [out["data"]["text/html"] for cell in nb.cells for out in cell.get("outputs", [])
                 if "fpw-snapshot" in out.get("data", {}).get("text/html", "")]
    assert snapshots, "no snapshot output beside the widget"
    assert all("take 10" in page and "completed" in page for page in snapshots), snapshots[0][-600:]
    text, posters = posters_taken_out(path.read_text())
    assert len(posters) == len(snapshots), f"{len(posters)} posters for {len(snapshots)} snapshots"
    assert all(len(poster) <= POSTER_BYTES and poster[:2] == b"\xff\xd8" for poster in posters)
    assert key not in text and key[8:] not in text, "the API key is in the saved notebook"
    for magic in MAGIC:
        assert magic not in text, f"{magic!r} (image/video bytes) found in the saved notebook"
    runs = LONG_BASE64.findall(text)
    assert not runs, f"{len(runs)} long base64 runs in the saved notebook, e.g. {runs[0][:60]}..."
    for model in state.values():
        assert not model.get("buffers"), f"binary buffers saved with widget state: {json.dumps(model)[:200]}"
