"""Class administration for instructors: quotas, pausing the queue, the class report; and the
server's retention (``collect_garbage``)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import update

from storage import retention
from storage.files import size_of
from storage.models import INT_MAX, Dataset, utcnow

from .base import QUOTA_NAMES, ServiceBase
from .errors import InvalidRequest, PermissionDenied
from .views import Caller, csv_cell

log = logging.getLogger("tinytutor.service")

STAGING_GRACE_SECONDS = 3600  # an upload staged this long ago is no longer being read (the sandbox's limit is 30 s)


@dataclass
class Collected:
    """What a clean-up removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    uploads: list[str] = field(default_factory=list)  # relative paths of upload files
    jobs: list[int] = field(default_factory=list)  # failed or cancelled jobs whose files went (those with any)
    staged: list[str] = field(default_factory=list)  # leftovers in tmp/
    files: int = 0  # paths removed (a directory counts once)
    bytes: int = 0

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "uploads": self.uploads, "jobs": self.jobs, "staged": self.staged,
                "files": self.files, "bytes": self.bytes}


class Admin(ServiceBase):
    # -- quotas and the queue ----------------------------------------------------------------------
    async def quotas(self, caller: Caller) -> dict:
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            return {k: getattr(cls, k) for k in QUOTA_NAMES} | {"paused": cls.paused}

    async def set_quotas(self, caller: Caller, **values) -> dict:
        if not caller.steers:
            raise PermissionDenied("Only instructors can change the class's quotas.")
        values = {k: v for k, v in values.items() if v is not None}
        for k, v in values.items():
            if k not in QUOTA_NAMES:
                raise InvalidRequest(f"{k} is not a quota; the quotas are {', '.join(QUOTA_NAMES)}")
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= INT_MAX:
                raise InvalidRequest(f"{k} must be a whole number from 1 to {INT_MAX:,}, got {v!r}")
        if "max_bytes" in values and values["max_bytes"] > self.settings.data.max_bytes:
            raise InvalidRequest(f"max_bytes cannot exceed the server's limit of {self.settings.data.max_bytes:,} "
                                 "([data].max_bytes in config.toml)")
        if "max_rows" in values and values["max_rows"] > self.settings.data.max_rows:
            raise InvalidRequest(f"max_rows cannot exceed the server's limit of {self.settings.data.max_rows:,} "
                                 "([data].max_rows in config.toml)")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            for k, v in values.items():
                setattr(cls, k, v)
        return await self.quotas(caller)

    async def set_paused(self, caller: Caller, paused: bool) -> dict:
        """Pause or resume the class's queue: running jobs go on, queued ones wait."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can pause or resume the class queue.")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            cls.paused = paused
        return await self.quotas(caller)

    async def class_report(self, caller: Caller) -> tuple[list[dict], bytes]:
        """Instructors: per student, jobs by outcome and their best model; and every job as CSV."""
        import csv
        import io

        if not caller.steers:
            raise PermissionDenied("Only instructors can see the class report.")
        views = await self.jobs(caller, everyone=True, limit=100_000)
        students: dict[str, dict] = {}
        for v in sorted(views, key=lambda v: v.id):
            st = students.setdefault(v.owner_id, {"student": v.owner_id, "jobs": 0, "succeeded": 0, "failed": 0,
                                                  "cancelled": 0, "open": 0, "best_macro_f1": None,
                                                  "best_model": None})
            st["jobs"] += 1
            key = v.status if v.status in ("succeeded", "failed", "cancelled") else "open"
            st[key] += 1
            if v.macro_f1 is not None and (st["best_macro_f1"] is None or v.macro_f1 > st["best_macro_f1"]):
                st["best_macro_f1"], st["best_model"] = v.macro_f1, v.name
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["job", "student", "model", "status", "macro_f1", "attempts", "created_at", "started_at",
                    "finished_at", "error"])
        for v in sorted(views, key=lambda v: v.id):
            d = v.to_dict()
            w.writerow([v.id, v.owner_id, csv_cell(v.name), v.status, "" if v.macro_f1 is None else f"{v.macro_f1:.4f}",
                        v.attempts, d["created_at"], d["started_at"] or "", d["finished_at"] or "", csv_cell(v.error or "")])
        ranked = sorted(students.values(), key=lambda s: -(s["best_macro_f1"] or -1))
        return ranked, buf.getvalue().encode("utf-8")

    async def member_roles(self, guild_id: str) -> dict[str, str]:
        """Each member's recorded role (student or instructor), for the operator's command line."""
        from sqlalchemy import select

        from storage.models import Member

        async with self.db.transaction() as s:
            return dict((await s.execute(select(Member.user_id, Member.role).where(Member.guild_id == guild_id))).all())

    async def students(self, caller: Caller) -> list[dict]:
        """Instructors: the class report's rows with each student's name and what went wrong with their data:
        the warnings of their latest upload, and their latest failure."""
        from sqlalchemy import func, select

        from storage.models import FAILED, Job

        ranked, _ = await self.class_report(caller)
        names = await self.member_names(caller)
        g = caller.guild_id
        async with self.db.transaction() as s:  # each student's newest upload and newest failure, one row each
            newest_upload = select(func.max(Dataset.id)).where(Dataset.guild_id == g).group_by(Dataset.owner_id)
            latest = {ds.owner_id: ds for ds in (await s.execute(
                select(Dataset).where(Dataset.id.in_(newest_upload)))).scalars()}
            newest_failure = (select(func.max(Job.id)).where(Job.guild_id == g, Job.status == FAILED,
                                                             Job.error.is_not(None)).group_by(Job.owner_id))
            failures = dict((await s.execute(select(Job.owner_id, Job.error).where(Job.id.in_(newest_failure)))).all())
        for row in ranked:
            who = row["student"]
            ds = latest.get(who)
            row["name"] = names.get(who) or who
            row["dataset"] = ds.name if ds else None
            row["data_warnings"] = [w["message"] for w in (ds.lint.get("warnings") or [])] if ds else []
            row["last_error"] = failures.get(who)
        return ranked

    # -- retention (the server's operator) -----------------------------------------------------------
    async def collect_garbage(self, caller: Caller, dry_run: bool = False) -> Collected:
        """Remove what ``[storage]`` retention lets go (storage.retention says what is always kept): old
        uploads nothing uses, failed and cancelled jobs' files, stale staged uploads. The server's
        operator only (``tinytutor gc``, the periodic clean-up)."""
        if not caller.operator:
            raise PermissionDenied("Only the server's operator can remove stored files (tinytutor gc).")
        cfg, now = self.settings.storage, utcnow()

        def before(days: float):
            return now - timedelta(days=days) if days else None

        out = Collected(dry_run)
        async with self.db.transaction() as s:
            found = await retention.forgettable(s, before(cfg.keep_uploads_days), before(cfg.keep_failed_days))
            out.uploads = sorted(found.datasets)
            if not dry_run and found.datasets:  # marked in the transaction that found them unused
                ids = [i for rows in found.datasets.values() for i in rows]
                await s.execute(update(Dataset).where(Dataset.id.in_(ids)).values(removed_at=now)
                                .execution_options(synchronize_session=False))
        staged = await asyncio.to_thread(self.store.stale_staging, STAGING_GRACE_SECONDS)
        out.staged = [self.store.rel(p) for p in staged]
        paths = [self.store.path(rel) for rel in out.uploads] + staged
        for job_id in found.jobs:
            left = await asyncio.to_thread(self.store.job_files, job_id)
            if left:  # an earlier clean-up took the rest
                out.jobs.append(job_id)
                paths += left

        def remove() -> None:
            for p in paths:
                if not p.exists():
                    continue
                out.files += 1
                out.bytes += size_of(p)
                if not dry_run:
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

        await asyncio.to_thread(remove)
        if not dry_run and out.files:
            log.info("retention removed %d upload(s), the files of %d failed or cancelled job(s) and %d staged "
                     "file(s): %.1f MB", len(out.uploads), len(out.jobs), len(out.staged), out.bytes / 1e6)
        return out
