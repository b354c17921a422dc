"""The one place that builds the database, the service and the scheduler from settings, so the bot,
the command line and the demo start (and stop) the same way."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database
from trainer.scheduler import Scheduler

from .service import Service


@dataclass
class Runtime:
    settings: object
    db: Database
    service: Service
    scheduler: Scheduler

    @classmethod
    async def open(cls, settings, database_url: str | None = None, **scheduler_kwargs) -> Runtime:
        """Connect (to ``database_url``, else the configured database), upgrade the schema to head (the
        app always does at start), build the parts."""
        db = Database(database_url or settings.database_url)
        try:
            await db.upgrade()
        except BaseException:
            await db.close()
            raise
        scheduler = Scheduler(db, settings, **scheduler_kwargs)
        return cls(settings, db, Service(db, settings, slots=scheduler.slots), scheduler)

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.db.close()
