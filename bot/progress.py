"""The bot's own bookkeeping of progress messages: which channel message shows which job's progress.

A Discord detail, so it lives on the bot side; the job row keeps the message's id (so edits resume
after a restart) through ``storage.queue``'s queries, and the views come from the service.
"""

from __future__ import annotations

from storage import queue as q
from storage.db import Database


class ProgressMessages:
    def __init__(self, db: Database, service):
        self.db, self.service = db, service

    async def remember(self, job_id: int, channel_id: str, message_id: str) -> None:
        async with self.db.transaction() as s:
            await q.set_progress_message(s, int(job_id), str(channel_id), str(message_id))

    async def pending(self) -> list[tuple[object, str, str]]:
        """Jobs whose progress message still needs edits: (view, channel id, message id)."""
        async with self.db.transaction() as s:
            rows = await q.progress_message_rows(s)
        views = {v.id: v for v in await self.service.views([r[0] for r in rows])} if rows else {}
        return [(views[i], channel, message) for i, channel, message in rows if i in views]

    async def forget(self, job_id: int) -> None:
        async with self.db.transaction() as s:
            await q.clear_progress_message(s, int(job_id))
