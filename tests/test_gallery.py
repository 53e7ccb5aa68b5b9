"""The shared gallery: a folder that plays in any browser with no kernel, network or package.

What is checked here, on real runs made by the simulator: the folder's files, the page's
data (one card per run from `Run.to_dict()`, made shareable; the word diffs from
`compare.diff_ops`), that nothing in it points outside the folder or holds the key, and the
widget's `export_html` and Share button. tests/browser/test_gallery_from_file.py opens the page from
file:// in Chromium and plays two runs in lock-step.
"""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from pathlib import Path

import pytest

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.compare import diff_ops
from framepack_widgets.constants import MAX_GALLERY_RUNS
from framepack_widgets.errors import InvalidInputError
from framepack_widgets._assets import STATIC
from framepack_widgets.gallery import DATA_ID, GALLERY_FORMAT, export_gallery, read_gallery_data, zip_gallery
from framepack_widgets.runs import Run, RunStore
from framepack_widgets.simulator import Simulator
from gallery_runs import make_runs

SPECS = [
    {"prompt": "the camera zooms in slowly on the red house", "seed": 1},
    {"prompt": "the camera pans left across the hills", "seed": 2, "negative_prompt": "blurry"},
    {"prompt": "the camera zooms in slowly on the red house", "seed": 1, "duration": 11},
]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunStore, list[Run]]:
    store, runs = make_runs(tmp_path_factory.mktemp("gallery") / "store", SPECS)
    yield store, runs
    store.close()


@pytest.fixture(scope="module")
def gallery(made: tuple[RunStore, list[Run]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_gallery(made[1], tmp_path_factory.mktemp("shared") / "my gallery")


def test_the_folder_holds_the_page_videos_and_posters(gallery: Path, made: tuple[RunStore, list[Run]]) -> None:
    runs = made[1]
    assert gallery.name == "index.html" and gallery.is_file()
    folder = gallery.parent
    data = read_gallery_data(gallery)
    assert data["format"] == GALLERY_FORMAT and len(data["runs"]) == len(runs)
    for run, entry in zip(runs, data["runs"]):
        assert (folder / entry["video"]).read_bytes() == Path(run.video_path).read_bytes()
        assert (folder / entry["poster"]).read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    # Only what the page names: no stray files, nothing half-written.
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == sorted(["index.html", *(e["video"] for e in data["runs"]), *(e["poster"] for e in data["runs"])])
    assert gallery.stat().st_size <= 100 * 1024


def test_each_card_carries_the_run_record_made_shareable(gallery: Path, made: tuple[RunStore, list[Run]]) -> None:
    runs = made[1]
    data = read_gallery_data(gallery)
    for run, entry in zip(runs, data["runs"]):
        record = run.to_dict()
        for key in ("run_id", "task_id", "prompt", "negative_prompt", "duration", "backend", "cost_usd",
                    "created_at", "submitted_at", "finished_at", "wall_time", "parent_id", "timeline_id", "segment"):
            assert entry[key] == record[key], key
        assert entry["stage"] == "completed" and entry["simulated"] is True
        assert entry["video_facts"]["seconds"] == pytest.approx(run.duration, abs=0.1)
    text = json.dumps(data)
    store_folder = str(made[0].folder)
    assert store_folder not in text and str(Path(store_folder).resolve()) not in text, "a local path in the page"
    assert "://" not in text, "the page's data names something outside the folder (a URL)"
    assert "video_path" not in text and "video_url" not in text


def test_word_diffs_come_from_python_for_each_pair_of_distinct_prompts(gallery: Path) -> None:
    data = read_gallery_data(gallery)
    a, b, c = data["runs"]
    assert a["p"] == c["p"] != b["p"], "the same prompt is one entry"
    assert data["diffs"][f"{a['p']},{b['p']}"] == diff_ops(a["prompt"], b["prompt"])
    assert data["diffs"][f"{b['p']},{a['p']}"] == diff_ops(b["prompt"], a["prompt"])
    assert len(data["diffs"]) == 2


def test_the_page_is_self_contained(gallery: Path) -> None:
    page = gallery.read_text(encoding="utf-8")
    # The built gallery script and CSS, inlined as they are (the script holds the widget's own
    # comparison panel and player): one inline script, no module, nothing to import.
    script = (STATIC / "gallery.js").read_text(encoding="utf-8")
    assert f"<script>\n{script}</script>" in page
    assert f"<style>\n{(STATIC / 'gallery.css').read_text(encoding='utf-8')}</style>" in page
    assert page.count("<script") == 2, "the data and the script, nothing else"
    assert 'type="module"' not in page and not re.search(r"\bimport\s*[{(*\"']", script)
    assert not re.search(r"""\b(?:src|href)\s*=\s*["'](?!#)""", page), "the page loads a file by itself"
    # The script runs where it stands: after the elements it reads.
    assert page.index('id="fpw-gallery"') < page.index(f'id="{DATA_ID}"') < page.index("<script>\n")
    # Whatever the code says, the browser is told to fetch nothing from outside.
    assert "default-src 'none'" in page


def test_a_built_file_that_could_close_its_element_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import framepack_widgets.gallery as gallery_module

    for name in ("gallery.js", "gallery.css"):
        (tmp_path / name).write_text((STATIC / name).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(gallery_module, "frontend_file", lambda name: tmp_path / name if (tmp_path / name).is_file() else None)
    data = {"title": "t", "runs": []}
    assert "<script>" in gallery_module._page(data)
    (tmp_path / "gallery.js").write_text('console.log("</script><script>alert(1)")', encoding="utf-8")
    with pytest.raises(ValueError, match="closing tag"):
        gallery_module._page(data)
    (tmp_path / "gallery.js").write_text("1", encoding="utf-8")
    (tmp_path / "gallery.css").write_text("a{}</STYLE>", encoding="utf-8")
    with pytest.raises(ValueError, match="closing tag"):
        gallery_module._page(data)
    (tmp_path / "gallery.css").unlink()
    with pytest.raises(FileNotFoundError, match="was not built"):
        gallery_module._page(data)


def test_the_key_never_reaches_the_gallery(made: tuple[RunStore, list[Run]], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-live-GALLERY-0123456789abcdef"
    monkeypatch.setenv("PIAPI_API_KEY", key)
    index = export_gallery(made[1][:1], tmp_path / "g")
    for path in index.parent.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_a_run_without_video_gets_a_card_and_a_poster_from_its_start_image(made: tuple[RunStore, list[Run]], tmp_path: Path) -> None:
    store, runs = made
    record = runs[0].to_dict()
    record.update(run_id="novideo", stage="failed", video_path=None, error="the task failed")
    failed = Run.from_dict(record)
    failed.store = store
    index = export_gallery([failed, runs[1]], tmp_path / "g")
    entry = read_gallery_data(index)["runs"][0]
    assert "video" not in entry and entry["error"] == "the task failed"
    assert (index.parent / entry["poster"]).is_file()


def test_bad_run_lists_are_refused_with_what_to_do(made: tuple[RunStore, list[Run]], tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="at least one run"):
        export_gallery([], tmp_path / "g")
    with pytest.raises(InvalidInputError, match=f"at most {MAX_GALLERY_RUNS}"):
        export_gallery(made[1] * (MAX_GALLERY_RUNS // 3 + 1), tmp_path / "g")
    assert not (tmp_path / "g").exists(), "nothing is written for a refused gallery"


def test_zip_holds_the_folder(gallery: Path, tmp_path: Path) -> None:
    archive = zip_gallery(gallery.parent)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert f"{gallery.parent.name}/index.html" in names
    assert sum(n.endswith(".mp4") for n in names) == 3


# ------------------------------------------------------------------ through the widget
@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


@pytest.fixture
async def widget(sim: Simulator, made: tuple[RunStore, list[Run]]):
    client = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    w = FramepackWidget(client, store=made[0])
    sent: list[tuple[dict, list]] = []
    w.send = lambda content, buffers=None: sent.append((content, buffers or []))  # type: ignore[method-assign]
    w.sent = sent  # type: ignore[attr-defined]
    yield w
    await w.runner.aclose()
    w.close()
    await client.close()


async def test_export_html_defaults_to_the_selected_runs_else_the_finished_ones(widget: FramepackWidget, tmp_path: Path,
                                                                              made: tuple[RunStore, list[Run]]) -> None:
    ids = [r.run_id for r in made[1]]
    index = widget.export_html(tmp_path / "all")
    assert index == tmp_path / "all" / "index.html"
    assert sorted(e["run_id"] for e in read_gallery_data(index)["runs"]) == sorted(ids)
    widget.selected = ids[:2]
    index = widget.export_html(tmp_path / "selected")
    assert [e["run_id"] for e in read_gallery_data(index)["runs"]] == ids[:2]
    index = widget.export_html(tmp_path / "given", runs=[made[1][2].run_id])
    assert [e["run_id"] for e in read_gallery_data(index)["runs"]] == [ids[2]]
    with pytest.raises(ValueError, match="No run"):
        widget.export_html(tmp_path / "x", runs=["nope"])


async def test_the_share_button_writes_a_gallery_and_downloads_it_zipped(widget: FramepackWidget) -> None:
    ids = [r.run_id for r in widget.runs][:2]
    widget._handle_custom_msg({"type": "share", "run_ids": ids}, [])
    for _ in range(500):
        downloads = [c for c, _ in widget.sent if c.get("type") == "download"]
        if downloads and len(downloads) == downloads[0]["count"]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"no download; notice={widget._notice!r}, sent={[c for c, _ in widget.sent]}")
    assert downloads[0]["name"].startswith("gallery-") and downloads[0]["name"].endswith(".zip")
    assert all(len(b[0]) <= widget._limits["chunk_bytes"] for c, b in widget.sent if c.get("type") == "download")
    zipped = Path(widget.store.folder) / "exports" / downloads[0]["name"]
    with zipfile.ZipFile(zipped) as zf:
        index = next(n for n in zf.namelist() if n.endswith("index.html"))
        data = read_gallery_data_text(zf.read(index).decode())
    assert [e["run_id"] for e in data["runs"]] == ids
    told = [c for c, _ in widget.sent if c.get("type") == "exported"]
    assert told == [{"type": "exported", "what": "gallery", "name": downloads[0]["name"]}]  # beside Share
    assert widget._notice == "", "the notice at the top names no file (nor its folder)"


def read_gallery_data_text(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="fpw-gallery-data">(.*?)</script>', page, re.DOTALL)
    assert found
    return json.loads(found.group(1))


# --------------------------------------------------------------------------- issue 18: a full disk
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fails_on", ["the second video", "a poster", "the page"])
@pytest.mark.parametrize("earlier", [False, True], ids=["new folder", "over an earlier gallery"])
def test_a_full_disk_during_an_export_says_so_and_leaves_no_partial_copies(
        fails_on: str, earlier: bool, made: tuple[RunStore, list[Run]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import shutil

    from framepack_widgets import gallery as gallery_module
    from framepack_widgets.errors import FramepackError

    out = tmp_path / "shared" / "g"
    if earlier:
        export_gallery(made[1][:1], out, title="the earlier one")
    before = _snapshot(out) if earlier else None
    full = OSError(errno.ENOSPC, "No space left on device")
    copies = {"n": 0}
    real_copy, real_save = shutil.copyfile, None

    def copyfile(src, dst, *a, **k):
        copies["n"] += 1
        if fails_on == "the second video" and copies["n"] == 2:
            real_copy(src, dst)  # half of it made it to the disk
            raise full
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(gallery_module.shutil, "copyfile", copyfile)
    if fails_on == "a poster":
        from PIL import Image

        real_save = Image.Image.save

        def save(self, fp, *a, **k):
            real_save(self, fp, *a, **k)
            raise full

        monkeypatch.setattr(Image.Image, "save", save)
    if fails_on == "the page":
        def write_text(self, *a, **k):
            raise full

        monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(FramepackError) as info:
        export_gallery(made[1], out)
    text = str(info.value)
    assert "space" in text.lower() and str(out) in text and "free" in text.lower()
    assert isinstance(info.value, OSError)  # callers catching OSError still do
    monkeypatch.undo()
    if earlier:
        assert _snapshot(out) == before, "the earlier gallery is untouched"
    else:
        assert not out.exists(), "no half-written gallery folder"
    assert [p.name for p in out.parent.iterdir() if p.name != "g"] == [], "no temporary folder left"


def test_a_video_stored_before_settings_travelled_gets_them_in_the_gallery(
        made: tuple[RunStore, list[Run]], tmp_path: Path) -> None:
    import av

    from framepack_widgets.video import read_settings

    run = made[1][0]
    bare = tmp_path / "bare.mp4"  # the stored video remuxed without its comment tag
    with av.open(str(run.video_path)) as source, av.open(str(bare), "w", format="mp4") as out:
        copy = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    assert read_settings(bare) is None
    old = Run.from_dict({**run.to_dict(), "video_path": str(bare)})
    page = export_gallery([old], tmp_path / "old")
    entry = read_gallery_data(page)["runs"][0]
    settings = read_settings(page.parent / entry["video"])
    assert settings is not None and settings["run_id"] == run.run_id and settings["prompt"] == run.prompt
    assert read_settings(bare) is None  # the store's file is left as it was
