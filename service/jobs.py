"""Jobs: what a student (or the class, for instructors) has queued, running and finished; cancel,
priority and reports."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from storage import queue as q
from storage.models import FINISHED, QUEUED, RUNNING, Job, Report

from .base import ServiceBase
from .errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from .views import Caller, JobView, ReportView

MAX_PRIORITY = 1_000_000


class Jobs(ServiceBase):
    async def job(self, caller: Caller, job_id: int) -> JobView:
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            return (await self._views(s, [job]))[0]

    async def jobs(self, caller: Caller, everyone: bool = False, statuses: tuple[str, ...] | None = None,
                   limit: int = 50, offset: int = 0) -> list[JobView]:
        """The caller's jobs, newest first; ``everyone`` (instructors) lists the whole class."""
        async with self.db.transaction() as s:
            stmt = self._jobs_query(caller, everyone, statuses)
            jobs = list((await s.execute(stmt.order_by(Job.id.desc()).offset(offset).limit(limit))).scalars())
            return await self._views(s, jobs)

    async def count_jobs(self, caller: Caller, everyone: bool = False, statuses: tuple[str, ...] | None = None) -> int:
        """How many jobs ``jobs`` would list without a limit (for pages)."""
        async with self.db.transaction() as s:
            stmt = self._jobs_query(caller, everyone, statuses)
            return (await s.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()

    def _jobs_query(self, caller: Caller, everyone: bool, statuses: tuple[str, ...] | None):
        if everyone and not caller.steers:
            raise PermissionDenied("Only instructors can see the whole class's jobs.")
        stmt = select(Job).where(Job.guild_id == caller.guild_id)
        if not everyone:
            stmt = stmt.where(Job.owner_id == caller.user_id)
        if statuses:
            stmt = stmt.where(Job.status.in_(statuses))
        return stmt

    async def class_queue(self, caller: Caller) -> list[JobView]:
        """Instructors: the class's running jobs, then its queued jobs in the order they will start."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can see the class queue.")
        views = await self.jobs(caller, everyone=True, statuses=(QUEUED, RUNNING), limit=1000)
        return sorted(views, key=lambda v: (v.status != RUNNING, v.position or 0, v.id))

    async def cancel(self, caller: Caller, job_id: int) -> JobView:
        """A queued job is cancelled at once; a running one is stopped by the scheduler within seconds."""
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            if job.status in FINISHED:
                done = {"succeeded": "finished", "failed": "failed", "cancelled": "been cancelled"}[job.status]
                raise Conflict(f"Job {job_id} has already {done}.")
            who = caller.user_id if not caller.operator else "operator"
            if job.status == QUEUED:
                if await q.cancel(s, job.id, None, by=who) is None:
                    raise Conflict(f"Job {job_id} just started; try again to stop it.")
            else:
                job.cancel_requested = True
        return await self.job(caller, job_id)

    async def set_priority(self, caller: Caller, job_id: int, priority: int) -> JobView:
        if not caller.steers:
            raise PermissionDenied("Only instructors can change a job's priority.")
        if not -MAX_PRIORITY <= int(priority) <= MAX_PRIORITY:
            raise InvalidRequest(f"Priority must be between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,} (higher runs first).")
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            job.priority = int(priority)
        return await self.job(caller, job_id)

    async def report(self, caller: Caller, job_id: int) -> ReportView:
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            rep = (await s.execute(select(Report).where(Report.job_id == job.id))).scalar_one_or_none()
            if rep is None:
                state = f"failed: {job.error}" if job.error and job.status != QUEUED else job.status
                raise Conflict(f"Job {job_id} has no report yet ({state}).")
            return await self._report_view(s, job, rep)

    async def suspect_rows(self, caller: Caller, job_id: int) -> tuple[ReportView, list[dict], bytes]:
        """The rows of a finished job's file whose label looks wrong (``trainer.insight``), and the same as a
        CSV to fix in a spreadsheet (formula-safe). The job's owner's and their instructors' only."""
        rep = await self.report(caller, job_id)
        from trainer.insight import suspects_csv  # the same file the run wrote beside the model

        rows = rep.metrics.get("suspect_rows") or []
        data = rep.metrics.get("data") or {}
        return rep, rows, suspects_csv(rows, data.get("text_column", "text"), data.get("label_column", "label"))

    async def confusion_cell(self, caller: Caller, job_id: int, label: str, predicted: str) -> tuple[ReportView, list[dict]]:
        """The test examples in one cell of a finished job's confusion matrix (true ``label``, ``predicted``),
        most confident first, each with its confidence and, for most, why it was so labelled. The job's owner's
        and their instructors' only, as its report is."""
        rep = await self.report(caller, job_id)
        labels = rep.metrics.get("labels") or []
        if label not in labels or predicted not in labels:
            raise NotFound(f"Job {job_id}'s labels are {', '.join(labels)}; there is no cell {label} → {predicted}.")
        if rep.test_examples_json is None:
            raise Conflict(f"Job {job_id} finished before TinyTutor kept each test example; its report has the "
                           "counts only. Train it again to see the examples in each cell.")
        examples = json.loads(await asyncio.to_thread(rep.test_examples_json.read_text, encoding="utf-8"))
        return rep, [x for x in examples if x["label"] == label and x["predicted"] == predicted]

    async def job_report(self, job_id: int) -> ReportView | None:
        """The report of a job, for the outbox pump (no caller: it posts where the job was submitted)."""
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            rep = (await s.execute(select(Report).where(Report.job_id == int(job_id)))).scalar_one_or_none()
            if job is None or rep is None:
                return None
            return await self._report_view(s, job, rep)

    async def views(self, job_ids: list[int]) -> list[JobView]:
        """Views of these jobs, whoever owns them (for the bot's own bookkeeping, not for a caller)."""
        async with self.db.transaction() as s:
            jobs = list((await s.execute(select(Job).where(Job.id.in_(job_ids)).order_by(Job.id))).scalars())
            return await self._views(s, jobs)

    # -- the bot's progress messages: the job row keeps the message's id, so edits resume after a restart --
    async def remember_progress_message(self, job_id: int, channel_id: str, message_id: str) -> None:
        async with self.db.transaction() as s:
            await q.set_progress_message(s, int(job_id), str(channel_id), str(message_id))

    async def progress_messages(self) -> list[tuple[JobView, str, str]]:
        """Jobs whose progress message still needs edits: (view, channel id, message id)."""
        async with self.db.transaction() as s:
            rows = await q.progress_message_rows(s)
        views = {v.id: v for v in await self.views([r[0] for r in rows])} if rows else {}
        return [(views[i], channel, message) for i, channel, message in rows if i in views]

    async def forget_progress_message(self, job_id: int) -> None:
        async with self.db.transaction() as s:
            await q.clear_progress_message(s, int(job_id))
