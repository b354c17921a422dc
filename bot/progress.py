"""The bot's own bookkeeping of progress messages: which channel message shows which job's progress.

A Discord detail, so it lives on the bot side: the job row keeps the message's id (so edits resume
after a restart); the views come from the service.
"""

from __future__ import annotations

from sqlalchemy import select

from storage.db import Database
from storage.models import Job


class ProgressMessages:
    def __init__(self, db: Database, service):
        self.db, self.service = db, service

    async def remember(self, job_id: int, channel_id: str, message_id: str) -> None:
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            if job is not None:
                job.channel_id, job.message_id = str(channel_id), str(message_id)

    async def pending(self) -> list[tuple[object, str, str]]:
        """Jobs whose progress message still needs edits: (view, channel id, message id)."""
        async with self.db.transaction() as s:
            rows = (await s.execute(select(Job.id, Job.channel_id, Job.message_id)
                                    .where(Job.message_id.is_not(None)).order_by(Job.id))).all()
        views = {v.id: v for v in await self.service.views([r[0] for r in rows])} if rows else {}
        return [(views[i], channel, message) for i, channel, message in rows if i in views]

    async def forget(self, job_id: int) -> None:
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            if job is not None:
                job.message_id = None
