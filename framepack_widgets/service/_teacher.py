"""The teacher's JSON API (the teacher's page, `_page`, draws from it) and the class gallery.

Under `<prefix>teacher/api/`, for the hub's admins and the teachers' group only:

| route | what |
|---|---|
| `GET class` | the class: budget per student, paused, the cap, each student's spend, running tasks, outcome-unknown creates |
| `PUT class` | `{"budget_usd": 3.0 or null, "paused": true}` (either or both) |
| `POST class/pause`, `POST class/resume` | stop new creates, and let them through again |
| `GET students` | each student's budget, spent, reserved, left, running |
| `PUT students/{name}/budget` | `{"budget_usd": 5.0}`, or `null` for the class's budget |
| `GET tasks?state=…&owner=…` | creates, newest first |
| `POST tasks/{task_id}/cancel` | cancel any student's task |
| `GET unknown` | creates whose outcome is unknown (their price stays reserved) |
| `GET gallery` | the shared runs for the teacher's page: the offline gallery's data, videos as signed URLs, each run's student |
| `GET gallery/export` | the class gallery as the offline gallery, zipped |

And for the whole class, `GET <prefix>gallery`: the runs students shared, with their videos.
"""

from __future__ import annotations

import asyncio
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from tornado.web import HTTPError, RequestHandler

from ._handlers import ServiceHandler
from ._money import dollars, micros
from ._store import TaskRow
from ._views import envelope, error, student_row, task_data, teacher_task, video_url

__all__ = ["teacher_handlers"]

#: The most runs one gallery listing or export holds (the offline gallery's own limit applies too).
_GALLERY_LIMIT = 48


def _budget(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return micros(value)
    except ValueError:
        raise HTTPError(400, f"budget_usd is a number of dollars >= 0 (or null), not {value!r}") from None


class _TeacherHandler(ServiceHandler):
    async def prepare(self) -> None:
        await self.identify()
        await self.teacher()


class ClassHandler(_TeacherHandler):
    async def get(self) -> None:
        service = self.service
        default = service.options.budget_micros
        students = await service.db(service.store.students, default)
        running = await service.db(partial(service.store.tasks, states=("submitting", "active")))
        unknown = await service.db(partial(service.store.tasks, states=("unknown",)))
        self.send(envelope({
            "budget_usd": dollars(await service.db(service.store.class_budget, default)),
            "default_budget_usd": service.options.budget_usd,
            "paused": await service.db(service.store.paused),
            "max_running": service.options.max_running,
            "simulated": service.upstream.is_simulator,
            "students": [student_row(s) for s in students],
            "running": [teacher_task(r) for r in running],
            "unknown": [teacher_task(r) for r in unknown],
        }))

    async def put(self) -> None:
        service = self.service
        body = self.body_json()
        if "budget_usd" in body:
            await service.db(service.store.set_class_budget, _budget(body["budget_usd"]))
        if "paused" in body:
            if not isinstance(body["paused"], bool):
                raise HTTPError(400, 'paused is true or false')
            await service.db(service.store.set_paused, body["paused"])
        await self.get()


class PauseHandler(_TeacherHandler):
    async def post(self, what: str) -> None:
        await self.service.db(self.service.store.set_paused, what == "pause")
        self.send(envelope({"paused": what == "pause"}))


class StudentsHandler(_TeacherHandler):
    async def get(self) -> None:
        service = self.service
        students = await service.db(service.store.students, service.options.budget_micros)
        self.send(envelope([student_row(s) for s in students]))


class StudentBudgetHandler(_TeacherHandler):
    async def put(self, name: str) -> None:
        service = self.service
        body = self.body_json()
        if "budget_usd" not in body:
            raise HTTPError(400, 'send {"budget_usd": 5.0}, or {"budget_usd": null} for the class\'s budget')
        await service.db(service.store.set_budget, name, _budget(body["budget_usd"]))
        summary = await service.db(service.store.account, name, service.options.budget_micros)
        self.send(envelope(student_row(summary)))

    post = put


class TasksHandler(_TeacherHandler):
    async def get(self) -> None:
        service = self.service
        states = tuple(s for s in self.get_arguments("state") if s) or None
        owner = self.get_argument("owner", None) or None
        rows = await service.db(partial(service.store.tasks, owner=owner, states=states))
        self.send(envelope([teacher_task(r) for r in rows]))


class TeacherCancelHandler(_TeacherHandler):
    async def post(self, task_id: str) -> None:
        assert self.who is not None
        self.send(await self.service.cancel(self.who, task_id, self.base))


class UnknownHandler(_TeacherHandler):
    async def get(self) -> None:
        rows = await self.service.db(partial(self.service.store.tasks, states=("unknown",)))
        self.send(envelope([teacher_task(r) for r in rows]))


class GalleryHandler(ServiceHandler):
    """The class gallery: every run a student shared, newest first (any member of the class)."""

    async def get(self) -> None:
        await self.identify()
        service = self.service
        rows = await service.db(partial(service.store.tasks, shared=True, states=("completed",),
                                        limit=_GALLERY_LIMIT))
        self.send(envelope([task_data(r, base=self.base, video_secret=service.video_secret) for r in rows]))


class TeacherGalleryHandler(_TeacherHandler):
    """The shared runs as the offline gallery's data, for the teacher's page (its cards and comparison)."""

    async def get(self) -> None:
        service = self.service
        rows = await service.db(partial(service.store.tasks, shared=True, states=("completed",),
                                        limit=_GALLERY_LIMIT))
        rows = [r for r in rows if r.video]
        self.send(envelope(_gallery_page_data(rows, service.options.videos_dir, service.upstream.is_simulator,
                                              base=self.base, video_secret=service.video_secret)))


class GalleryExportHandler(_TeacherHandler):
    """The shared runs as the package's offline gallery (index.html, videos, posters), zipped."""

    async def get(self) -> None:
        service = self.service
        rows = await service.db(partial(service.store.tasks, shared=True, states=("completed",),
                                        limit=_GALLERY_LIMIT))
        rows = [r for r in rows if r.video]
        if not rows:
            self.send(error(404, "No shared run has a video yet: students share runs from their widget."))
            return
        simulated = service.upstream.is_simulator
        data = await asyncio.get_running_loop().run_in_executor(
            None, _export_zip, rows, service.options.videos_dir, simulated)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", 'attachment; filename="class-gallery.zip"')
        self.finish(data)


def _runs(rows: list[TaskRow], videos: Path, simulated: bool) -> list[Any]:
    """The shared creates as the package's `Run` records, as the gallery takes them."""
    from ..runs import Run
    from ..runs.record import RunStage
    from ..task import TaskStatus

    return [Run(run_id=row.id, params={"prompt": row.prompt, "negative_prompt": row.negative_prompt,
                                       "duration": row.duration, "start_image": None, "end_image": None},
                backend="simulator" if simulated else "piapi", stage=RunStage.COMPLETED,
                status=TaskStatus.COMPLETED, task_id=row.task_id, video_path=videos / str(row.video))
            for row in rows]


def _gallery_page_data(rows: list[TaskRow], videos: Path, simulated: bool, *, base: str,
                       video_secret: str) -> dict[str, Any]:
    from ..gallery import gallery_data

    runs = _runs(rows, videos, simulated)
    files = {row.id: {"video": video_url(base, video_secret, str(row.task_id))} for row in rows}
    data = gallery_data(runs, files, title=f"Class gallery: {len(runs)} shared run{'' if len(runs) == 1 else 's'}")
    owners = {row.id: row.owner for row in rows}
    for entry in data["runs"]:
        entry["owner"] = owners.get(entry["run_id"])
    return data


def _export_zip(rows: list[TaskRow], videos: Path, simulated: bool) -> bytes:
    from ..gallery import export_gallery, zip_gallery

    runs = _runs(rows, videos, simulated)
    with tempfile.TemporaryDirectory(prefix="framepack-class-gallery-") as folder:
        index = export_gallery(runs, Path(folder) / "class-gallery", title=f"Class gallery: {len(runs)} runs")
        return zip_gallery(index.parent).read_bytes()


def teacher_handlers(prefix: str) -> list[tuple[str, type[RequestHandler]]]:
    api = prefix + "teacher/api/"
    return [
        (api + r"class/?", ClassHandler),
        (api + r"class/(?P<what>pause|resume)/?", PauseHandler),
        (api + r"students/?", StudentsHandler),
        (api + r"students/(?P<name>[^/]+)/budget/?", StudentBudgetHandler),
        (api + r"tasks/?", TasksHandler),
        (api + r"tasks/(?P<task_id>[^/]+)/cancel/?", TeacherCancelHandler),
        (api + r"unknown/?", UnknownHandler),
        (api + r"gallery/?", TeacherGalleryHandler),
        (api + r"gallery/export/?", GalleryExportHandler),
        (prefix + r"gallery/?", GalleryHandler),
    ]
