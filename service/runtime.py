"""The one place that builds the database, the service, the scheduler and the process's periodic
tasks from settings, so the bot, the command line and the demo start (and stop) the same way."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from jobs.executor import Executor
from jobs.outbox import OutboxPump
from jobs.periodic import Periodic
from jobs.scheduler import Scheduler
from service import Caller, Service
from service.errors import ServiceError
from storage.db import Database

log = logging.getLogger("tinytutor.runtime")


class EmptyDatabase(ServiceError):
    """The database holds no schema while the data directory holds a class's files."""


def refuse_empty_database(db: Database, data_dir: str | Path) -> None:
    """An unmigrated database beside a data directory with uploads or models is not a new install: it is
    a database file that was emptied (truncated, replaced) or the wrong one. Starting would lose every
    job without a word and orphan the files, so stop and say what to do."""
    root = Path(data_dir)
    stored = [d for d in ("datasets", "models") if (root / d).is_dir() and any((root / d).iterdir())]
    if stored:
        raise EmptyDatabase(
            f"The database ({db.engine.url.render_as_string(hide_password=True)}) is empty, but the data "
            f"directory {root.resolve()} holds {' and '.join(stored)} of a class. Restore the database from a "
            "backup, or point [storage].database_url at the right one; to really start over, move the data "
            "directory away first.")


@dataclass
class Runtime:
    settings: object
    db: Database
    service: Service
    scheduler: Scheduler
    periodic: Periodic

    @classmethod
    async def open(cls, settings, database_url: str | None = None, *, executor: Executor | None = None,
                   **scheduler_kwargs) -> Runtime:
        """Connect (to ``database_url``, else the configured database), upgrade the schema to head (the
        app always does at start), build the parts. The executor defaults to ``[queue].executor``.
        ``async with await Runtime.open(settings) as rt:`` closes it at the end."""
        from storage.files import ArtefactStore

        if ArtefactStore(settings.storage.data_dir).make_private():
            log.warning("the data directory %s was readable by other users; it is now its owner's only",
                        settings.storage.data_dir)
        db = Database(database_url or settings.database_url)
        try:
            if await db.current_revision() is None:
                refuse_empty_database(db, settings.storage.data_dir)
            await db.upgrade()
        except BaseException:
            await db.close()
            raise
        from jobs import make_executor

        scheduler = Scheduler(db, settings, executor=executor or make_executor(settings), **scheduler_kwargs)
        return cls(settings, db, Service(db, settings, slots=scheduler.slots), scheduler, Periodic())

    async def start_jobs(self) -> None:
        """Start dispatching and reaping on this process's periodic tasks, revealing assignments past their
        deadline every ``[queue].reveal_seconds``, and the retention clean-up every ``[storage].gc_hours``
        (the first one that long after start)."""
        await self.scheduler.start(self.periodic)
        self.periodic.every(self.settings.queue.reveal_seconds, self.reveal_due, "reveal")
        self.periodic.every(self.settings.storage.gc_hours * 3600, self.collect_garbage, "gc", now=False)

    async def reveal_due(self) -> None:
        try:
            for name in await self.service.reveal_due():
                log.info("assignment '%s' revealed: its private board is announced", name)
        except Exception:  # the database briefly unavailable: the next turn tries again
            log.exception("revealing the assignments past their deadline failed")

    async def collect_garbage(self) -> None:
        try:
            await self.service.collect_garbage(Caller("*", "operator", operator=True))
        except Exception:  # the database or the disk briefly unavailable: the next turn tries again
            log.exception("the retention clean-up failed")

    def outbox(self, deliver, **kwargs) -> OutboxPump:
        """The pump that hands finished jobs' outbox rows to ``deliver`` (jobs.outbox.OutboxPump's arguments)."""
        return OutboxPump(self.db, deliver, **kwargs)

    async def close(self) -> None:
        await self.periodic.stop()  # no periodic turn may outlive the database
        await self.scheduler.stop()
        await self.db.close()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @staticmethod
    def stop_on_signals() -> asyncio.Event:
        """An event Ctrl-C (SIGINT) or SIGTERM sets: what a long-running command waits on before it closes."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return stop
