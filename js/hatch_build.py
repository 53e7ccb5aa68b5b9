"""The Python build builds the frontend: js/src/ -> framepack_widgets/static/ (js/build.mjs).

hatchling runs this hook for every wheel (`pip install .`, `pip wheel .`), editable install
(`pip install -e .`) and sdist, so each holds a complete package. The built files are
ignored by git, so they are named as artifacts for hatchling to include.

It rebuilds only when a source is newer than the built files: a wheel made from an sdist
(which carries the built files) needs no Node. When it must build, it needs Node.js and
npm (`apt-get install nodejs npm`); it runs `npm ci` first when js/node_modules lacks the
locked esbuild. A small hook of our own rather than hatch-jupyter-builder: that one runs
`npm install` on every build, which needs the registry and may rewrite the lock file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: What js/build.mjs writes into framepack_widgets/static/.
OUTPUTS = ("widget.js", "widget.css", "gallery.js", "gallery.css", "teacher.js", "teacher.css")


def _newest(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


class FrontendBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        js = root / "js"
        static = root / "framepack_widgets" / "static"
        outputs = [static / name for name in OUTPUTS]
        if (js / "src").is_dir() and self._stale(js, outputs):
            self._build(js)
        missing = [p.name for p in outputs if not p.is_file()]
        if missing:
            raise RuntimeError(
                f"framepack_widgets: the frontend build did not make {', '.join(missing)} in {static}; "
                "run `npm ci && npm run build` in js/ to see why"
            )
        build_data["artifacts"].extend(p.relative_to(root).as_posix() for p in outputs)

    @staticmethod
    def _stale(js: Path, outputs: list[Path]) -> bool:
        if not all(p.is_file() for p in outputs):
            return True
        sources = [p for p in (js / "src").rglob("*") if p.is_file()]
        sources += [js / "build.mjs", js / "package.json", js / "package-lock.json"]
        return _newest(sources) > min(p.stat().st_mtime for p in outputs)

    def _build(self, js: Path) -> None:
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            raise RuntimeError(
                "framepack_widgets: building the package builds its frontend (js/src/) with esbuild, "
                "which needs Node.js and npm: install them (Debian/Ubuntu: `apt-get install nodejs npm`) "
                "and build again"
            )
        installed = js / "node_modules" / ".package-lock.json"
        if not (js / "node_modules" / "esbuild").is_dir() or _newest([js / "package-lock.json"]) > _newest([installed]):
            self.app.display_info("framepack_widgets: npm ci (the frontend's build tools)")
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js, check=True)
        self.app.display_info("framepack_widgets: building the frontend (js/build.mjs)")
        subprocess.run([node, "build.mjs"], cwd=js, check=True)
