"""Run every benchmark (or the ones named) and print one table of measured figures.

    .venv/bin/python bench/run.py                 # all of them
    .venv/bin/python bench/run.py polling store   # only bench_polling.py and bench_store.py

Each `bench_<name>.py` beside this file exposes `results() -> list[dict]` with the keys
bench, metric, figure, goal and met (True, False, or None when there is no goal).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def print_table(rows: list[dict]) -> None:
    headers = ("bench", "metric", "figure", "goal", "met")
    cells = [
        (
            str(r.get("bench", "")),
            str(r.get("metric", "")),
            str(r.get("figure", "")),
            str(r.get("goal", "") or ""),
            {True: "yes", False: "NO", None: "-"}.get(r.get("met"), str(r.get("met"))),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def main(argv: list[str]) -> int:
    wanted = set(argv)
    sys.path.insert(0, str(HERE))
    rows: list[dict] = []
    failed = False
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(_load(path).results())
        except Exception:  # keep going: one broken bench must not hide the others
            failed = True
            traceback.print_exc()
            rows.append({"bench": name, "metric": "(crashed)", "figure": "see traceback", "goal": "", "met": False})
        print(f"  {path.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    missed = [r for r in rows if r.get("met") is False]
    print(f"\n{len(rows)} figures, {len(missed)} goals missed")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
