"""Storage: migrations give exactly the models' schema and go back down; SQLite is set up for many writers."""

from __future__ import annotations

from sqlalchemy import inspect, text

from storage.db import Database, alembic_config
from storage.models import Base


def _diff(connection):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(ctx, Base.metadata)


async def test_migrations_produce_the_models_schema_and_downgrade_cleanly(db_url):
    database = Database(db_url)
    try:
        await database.upgrade()
        async with database.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert {"classes", "members", "datasets", "jobs", "models", "reports", "outbox"} <= tables
        await database.downgrade("base")
        async with database.engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
        await database.upgrade()  # and up again from nothing
        async with database.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await database.close()


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
            fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
        assert (mode, fks) == ("wal", 1) and busy >= 5000
    finally:
        await database.close()


async def test_foreign_keys_are_enforced(db):
    from sqlalchemy.exc import IntegrityError

    from storage.models import Job, utcnow

    try:
        async with db.transaction() as s:
            s.add(Job(guild_id="nowhere", owner_id="u", dataset_id=12345, name="m", params={}, status="queued",
                      priority=0, attempts=0, max_attempts=1, cancel_requested=False, created_at=utcnow()))
    except IntegrityError:
        pass
    else:
        raise AssertionError("a job for a class and dataset that do not exist was stored")


async def test_alembic_config_points_at_this_projects_migrations():
    cfg = alembic_config()
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, "migrations must have a single head"
