"""Delivers outbox rows (finished, failed and cancelled jobs) and marks them delivered.

The row is written in the same transaction as the job's outcome, so a result is never lost when
Discord or the bot is down: delivery is retried with a growing delay until it succeeds. A row is
claimed before sending so a second notifier does not send it too; it is marked delivered right
after the send succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from storage import queue as q
from storage.db import Database
from storage.models import Outbox

log = logging.getLogger("tinytutor.notifier")

Deliver = Callable[[Outbox], Awaitable[None]]


class Notifier:
    def __init__(self, db: Database, deliver: Deliver, *, max_backoff_seconds: float = 300.0):
        self.db, self.deliver, self.max_backoff = db, deliver, max_backoff_seconds
        self._aps = None

    async def deliver_once(self, limit: int = 20) -> int:
        """Send what is due; returns how many were delivered."""
        async with self.db.transaction() as s:
            rows = await q.due_outbox(s, limit)
        sent = 0
        for row in rows:
            try:
                await self.deliver(row)
            except Exception as exc:  # Discord down, channel gone, ...: try again later
                backoff = min(self.max_backoff, 5.0 * 2 ** row.attempts)
                log.warning("outbox %s (%s for job %s) not delivered, retry in %.0f s: %s", row.id, row.kind,
                            row.job_id, backoff, exc)
                async with self.db.transaction() as s:
                    await q.mark_retry(s, row.id, f"{exc.__class__.__name__}: {exc}", backoff)
                continue
            async with self.db.transaction() as s:
                await q.mark_delivered(s, row.id)
            sent += 1
        return sent

    def start(self, seconds: float = 2.0) -> None:
        from datetime import UTC, datetime

        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._aps = AsyncIOScheduler(timezone=UTC)
        self._aps.add_job(self.deliver_once, "interval", seconds=seconds, id="outbox", max_instances=1,
                          coalesce=True, next_run_time=datetime.now(UTC))
        self._aps.start()

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
