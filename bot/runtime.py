"""The one place that builds the database, the service and the scheduler from settings, so the bot,
the command line and the demo start (and stop) the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.db import Database
from trainer.scheduler import Scheduler

from .errors import ServiceError
from .service import Service


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

    @classmethod
    async def open(cls, settings, database_url: str | None = None, **scheduler_kwargs) -> Runtime:
        """Connect (to ``database_url``, else the configured database), upgrade the schema to head (the
        app always does at start), build the parts."""
        db = Database(database_url or settings.database_url)
        try:
            if await db.current_revision() is None:
                refuse_empty_database(db, settings.storage.data_dir)
            await db.upgrade()
        except BaseException:
            await db.close()
            raise
        scheduler = Scheduler(db, settings, **scheduler_kwargs)
        return cls(settings, db, Service(db, settings, slots=scheduler.slots), scheduler)

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.db.close()
