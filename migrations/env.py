"""Alembic environment (async template). The app passes its own connection in
``config.attributes["connection"]``; the ``alembic`` command line builds an engine from
``sqlalchemy.url`` (or TinyTutor's settings: $TINYTUTOR_DATABASE_URL, config.toml) and runs the same migrations through it."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:  # the alembic command line: the database TinyTutor's settings name
        from core.settings import load_settings

        url = load_settings().database_url
    engine = create_engine(url, pooled=False)
    async with engine.begin() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
