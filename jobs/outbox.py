"""The outbox pump: delivers outbox rows (finished, failed and cancelled jobs) and marks them delivered.

The row is written in the same transaction as the job's outcome, so a result is never lost when
Discord or the bot is down: delivery is retried with a growing delay until it succeeds. A row is
claimed before sending so a second pump does not send it too. A notice of several messages
records each one as it is sent, so a retry after an outage sends only the rest, never a part twice.

A destination that refuses the notice for good (``refused(exc)``; in Discord 403: the bot may not
post there, 404: the channel was deleted) is retried for ``give_up_after`` (someone may fix the
permission), then the row is marked given up and ``undeliverable`` is called once (the bot tells the
student directly). How to deliver, and what counts as refused, come from the caller: this layer
knows nothing of Discord.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from storage import queue as q
from storage.db import Database
from storage.models import Outbox, utcnow

from .periodic import Periodic

log = logging.getLogger("tinytutor.outbox")

PartSent = Callable[[int], Awaitable[None]]
Deliver = Callable[[Outbox, PartSent], Awaitable[None]]
Undeliverable = Callable[[Outbox, str], Awaitable[None]]


def never_refused(exc: Exception) -> bool:
    return False


class OutboxPump:
    def __init__(self, db: Database, deliver: Deliver, *, refused: Callable[[Exception], bool] = never_refused,
                 undeliverable: Undeliverable | None = None, give_up_after: timedelta = timedelta(minutes=30),
                 max_backoff_seconds: float = 300.0):
        self.db, self.deliver, self.refused, self.undeliverable = db, deliver, refused, undeliverable
        self.give_up_after, self.max_backoff = give_up_after, max_backoff_seconds

    async def deliver_once(self, limit: int = 20) -> int:
        """Send what is due; returns how many were delivered."""
        async with self.db.transaction() as s:
            rows = await q.due_outbox(s, limit)
        sent = 0
        for row in rows:
            async def part_sent(parts: int, row_id: int = row.id) -> None:
                async with self.db.transaction() as s:
                    await q.mark_part_sent(s, row_id, parts)

            try:
                await self.deliver(row, part_sent)
            except Exception as exc:  # Discord down, channel gone, ...: try again later
                error = f"{exc.__class__.__name__}: {exc}"
                if self.refused(exc) and utcnow() - row.created_at >= self.give_up_after:
                    await self._give_up(row, error)
                    continue
                backoff = min(self.max_backoff, 5.0 * 2 ** row.attempts)
                log.warning("outbox %s (%s for job %s) not delivered, retry in %.0f s: %s", row.id, row.kind,
                            row.job_id, backoff, error)
                async with self.db.transaction() as s:
                    await q.mark_retry(s, row.id, error, backoff)
                continue
            async with self.db.transaction() as s:
                await q.mark_delivered(s, row.id)
            sent += 1
        return sent

    async def _give_up(self, row: Outbox, error: str) -> None:
        log.warning("outbox %s (%s for job %s): channel %s refused it since %s; giving up: %s", row.id, row.kind,
                    row.job_id, row.channel_id, row.created_at, error)
        async with self.db.transaction() as s:
            await q.mark_gave_up(s, row.id, error)
        if self.undeliverable is not None:
            try:
                await self.undeliverable(row, error)
            except Exception as exc:  # a closed DM is the end of the road: /jobs still says it
                log.warning("outbox %s: the direct message to %s failed too: %s", row.id,
                            row.payload.get("owner_id"), exc)

    def start(self, periodic: Periodic, seconds: float = 2.0) -> None:
        periodic.every(seconds, self.deliver_once, "outbox")
