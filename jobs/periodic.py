"""The process's one periodic-task mechanism: one APScheduler ``AsyncIOScheduler`` on the event loop.

The dispatcher, the reaper, the outbox pump and the bot's progress editor each register an
interval task here (``every``); none runs two instances at once, and a turn that comes while the
previous one still runs is skipped (quietly: that is the point of ``max_instances=1``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime


class _SkippedRun(logging.Filter):
    """APScheduler warns each time a periodic task is still running when its next turn comes (slow
    delivery, a long dispatch). That is the intended behaviour of max_instances=1, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUN = _SkippedRun()


def quiet_skipped_runs() -> None:
    """Skipped turns are dropped; so are APScheduler's INFO lines for every turn (several a second)."""
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUN)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Periodic:
    """Interval tasks on the running event loop; ``start`` and ``stop`` the whole set."""

    def __init__(self):
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        quiet_skipped_runs()
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._started = False
        self._running: set[asyncio.Task] = set()  # turns in progress, so stop() can end them
        self._closed = False
        self.turns: Counter[str] = Counter()  # whole turns each task has finished
        self._turned = asyncio.Event()

    def every(self, seconds: float, task: Callable[[], Awaitable[object]], name: str, *, now: bool = True) -> None:
        """Run ``task`` every ``seconds`` (first at once when ``now``); replaces a task of the same name."""
        first = {"next_run_time": datetime.now(UTC)} if now else {}  # (None would add it paused)

        async def turn():
            if self._closed:  # created by APScheduler just before stop(): it must not start after it
                return
            me = asyncio.current_task()
            self._running.add(me)
            try:
                await task()
            finally:
                self._running.discard(me)
                self.turns[name] += 1
                self._turned.set()

        self._aps.add_job(turn, "interval", seconds=seconds, id=name, name=name, replace_existing=True,
                          max_instances=1, coalesce=True, misfire_grace_time=None, **first)
        if not self._started:
            self._aps.start()
            self._started = True

    def cancel(self, name: str) -> None:
        if self._aps.get_job(name) is not None:
            self._aps.remove_job(name)

    async def rounds(self, name: str, n: int = 2, timeout: float = 30) -> None:
        """Wait until ``name`` has run ``n`` whole turns that started after this call (one in progress now
        does not count): "after two more rounds of the outbox, nothing was sent again"."""
        target = self.turns[name] + n + 1  # the first to finish may have started before the call
        async with asyncio.timeout(timeout):
            while self.turns[name] < target:
                self._turned.clear()
                await self._turned.wait()

    @property
    def names(self) -> list[str]:
        return [j.id for j in self._aps.get_jobs()]

    async def stop(self) -> None:
        """No more turns; the turns in progress are cancelled and awaited (so none outlives the database
        or the event loop it runs on)."""
        self._closed = True
        if self._started:
            self._aps.shutdown(wait=False)
            self._started = False
        turns = [t for t in self._running if t is not asyncio.current_task()]
        for t in turns:
            t.cancel()
        await asyncio.gather(*turns, return_exceptions=True)
