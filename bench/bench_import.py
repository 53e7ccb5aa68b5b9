"""Import cost: `import framepack_widgets` against `import anywidget`, in fresh processes.

Two measures, median of RUNS fresh interpreters each: the module's cumulative time from
`python -X importtime` (what the import itself costs) and the wall time of `python -c`
(what a person waits for, interpreter start-up included). Also checks that PIL, numpy
and av stay unloaded after `import framepack_widgets` and after
`from framepack_widgets import Client, FramepackInput` (they load only when used).

Goal: import framepack_widgets <= 1.3x import anywidget.

    .venv/bin/python bench/bench_import.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

RUNS = 7
GOAL = 1.3
HEAVY = ("PIL", "numpy", "av")


def _importtime_us(statement: str, module: str) -> int:
    """Cumulative microseconds `module` took to import, from -X importtime."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) == 3 and parts[2].strip() == module:
            try:
                total = max(total, int(parts[1]))
            except ValueError:
                pass
    return total


def _wall_ms(statement: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True)
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode:
        raise RuntimeError(f"{statement!r} failed:\n{proc.stderr}")
    return elapsed


def _loaded_heavy(statement: str) -> list[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(runs: int = RUNS) -> dict:
    cases = {
        "framepack_widgets": ("import framepack_widgets", "framepack_widgets"),
        "anywidget": ("import anywidget", "anywidget"),
        "client+input": ("from framepack_widgets import Client, FramepackInput", "framepack_widgets.client"),
        "baseline": ("pass", ""),
    }
    out: dict[str, dict] = {}
    for name, (statement, module) in cases.items():
        wall, imp = [], []
        for _ in range(runs):  # interleaving would be fairer, but the gap here is large
            wall.append(_wall_ms(statement))
            if module:
                imp.append(_importtime_us(statement, module) / 1000)
        out[name] = {"wall_ms": statement and statistics.median(wall), "import_ms": statistics.median(imp) if imp else 0.0}
    if "client+input" in out:  # the whole statement's cost, not just framepack_widgets.client
        imp = [_importtime_total_ms("from framepack_widgets import Client, FramepackInput") for _ in range(runs)]
        out["client+input"]["import_ms"] = statistics.median(imp)
    out["heavy_after_import"] = _loaded_heavy("import framepack_widgets")
    out["heavy_after_client_input"] = _loaded_heavy("from framepack_widgets import Client, FramepackInput")
    return out


def _importtime_total_ms(statement: str) -> float:
    """Sum of top-level (non-nested) cumulative import times for a statement."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    baseline = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True
    )
    startup = {line.split("|")[-1].strip() for line in baseline.stderr.splitlines() if "|" in line}
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  ") and name.strip() not in startup:
            try:
                total += int(parts[1])
            except ValueError:
                pass
    return total / 1000


def results(runs: int = RUNS) -> list[dict]:
    m = measure(runs)
    fw, aw, ci, base = m["framepack_widgets"], m["anywidget"], m["client+input"], m["baseline"]
    ratio_import = fw["import_ms"] / aw["import_ms"] if aw["import_ms"] else float("inf")
    ratio_wall = fw["wall_ms"] / aw["wall_ms"]
    rows = [
        {"bench": "import", "metric": "import framepack_widgets (-X importtime, median)",
         "figure": f"{fw['import_ms']:.1f} ms", "goal": "", "met": None},
        {"bench": "import", "metric": "import anywidget (-X importtime, median)",
         "figure": f"{aw['import_ms']:.1f} ms", "goal": "", "met": None},
        {"bench": "import", "metric": "framepack_widgets / anywidget (import time)",
         "figure": f"{ratio_import:.2f}x", "goal": f"<= {GOAL}x", "met": ratio_import <= GOAL},
        {"bench": "import", "metric": "framepack_widgets / anywidget (python -c wall time)",
         "figure": f"{fw['wall_ms']:.0f} / {aw['wall_ms']:.0f} ms = {ratio_wall:.2f}x (bare python {base['wall_ms']:.0f} ms)",
         "goal": f"<= {GOAL}x", "met": ratio_wall <= GOAL},
        {"bench": "import", "metric": "from framepack_widgets import Client, FramepackInput",
         "figure": f"{ci['import_ms']:.1f} ms import, {ci['wall_ms']:.0f} ms wall ({ci['import_ms'] / aw['import_ms']:.2f}x anywidget)",
         "goal": "", "met": None},
        {"bench": "import", "metric": "PIL/numpy/av loaded after import framepack_widgets",
         "figure": ", ".join(m["heavy_after_import"]) or "none", "goal": "none", "met": not m["heavy_after_import"]},
        {"bench": "import", "metric": "PIL/numpy/av loaded after from framepack_widgets import Client, FramepackInput",
         "figure": ", ".join(m["heavy_after_client_input"]) or "none", "goal": "none",
         "met": not m["heavy_after_client_input"]},
    ]
    return rows


if __name__ == "__main__":
    for row in results():
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"{row['metric']:<80} {row['figure']:<60} {row['goal']:<8} {met}")
