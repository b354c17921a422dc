"""Engine, sessions and migrations for SQLite (aiosqlite) and PostgreSQL (asyncpg), one code path.

SQLite is made fit for several processes writing at once (the bot, the scheduler, each worker):
WAL, a busy timeout, foreign keys on, and every transaction opened with ``BEGIN IMMEDIATE`` so a
reader never has to upgrade to a writer mid-transaction (the case where SQLite answers
"database is locked" at once instead of waiting).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK = 7_246_117_301  # the PostgreSQL advisory lock key migrations hold ("tinytutor" on a phone pad)
SQLITE_BUSY_MS = 30_000
# A finished job's outcome is written again after these pauses (about 15 s in all, well inside the 60 s a
# running job may stay silent before it counts as lost: [queue].heartbeat_timeout_seconds).
OUTCOME_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
T = TypeVar("T")
log = logging.getLogger("tinytutor.db")


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def create_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """An async engine with this project's SQLite settings. ``pooled=False`` for short-lived processes."""
    u = make_url(url)
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {u.get_backend_name()!r}: use sqlite+aiosqlite or postgresql+asyncpg")
    kwargs = {} if pooled else {"poolclass": NullPool}
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """The engine and its session factory. One ``AsyncSession`` per task, never shared."""

    def __init__(self, url: str, *, pooled: bool = True):
        self.url = url
        self.engine = create_engine(url, pooled=pooled)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return is_postgres(self.url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def write_with_retries(self, write: Callable[[AsyncSession], Awaitable[T]], what: str,
                                 delays: tuple[float, ...] = OUTCOME_RETRY_DELAYS) -> T:
        """``await write(session)`` in a transaction, again after each of ``delays`` seconds if the database
        fails it (unreachable, a lock timeout, a constraint another writer just took): for writes that
        must not be lost, such as a finished job's outcome. The last failure is raised."""
        for attempt, delay in enumerate((*delays, None)):
            try:
                async with self.transaction() as s:
                    return await write(s)
            except (DBAPIError, OSError) as exc:
                if delay is None:
                    raise
                log.warning("%s failed (attempt %d of %d), again in %g s: %s", what, attempt + 1, len(delays) + 1,
                            delay, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def current_revision(self) -> str | None:
        """The schema's Alembic revision; None for a database never migrated (new, or emptied)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (every process does this at start).

        Any number of processes may start at once: the migration scripts are read outside any lock, a
        database already at head is left alone after one short read, and an upgrade that does run holds
        the database's lock for the whole migration (PostgreSQL: an advisory lock, so two processes never
        create the same table; SQLite: the BEGIN IMMEDIATE write lock), the second finding nothing to do."""
        head = _head_revision()
        if revision == "head" and await self.current_revision() == head:
            return
        async with self.engine.begin() as conn:
            if self.is_postgres:
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            await conn.run_sync(_run_alembic, "upgrade", revision)

    async def downgrade(self, revision: str = "base") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_alembic, "downgrade", revision)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _run_alembic(connection, action: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(connection)
    getattr(command, action)(cfg, revision)
