"""Shared fixtures: a tiny random BERT (fast unit tests), small datasets, databases, services (the data and
people they use are in helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from discord_env import env  # noqa: F401  (the fake-Discord fixture, for every test module)
from helpers import fresh_database, make_tiny_base, synthetic_rows, write_csv

os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture
def tiny_base(tmp_path_factory) -> Path:
    """A 4-layer tiny BERT (:func:`make_tiny_base`), new for each test."""
    return make_tiny_base(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "topics.csv", synthetic_rows())


@pytest.fixture
def learnable_csv(tmp_path) -> Path:
    """Twice the rows, for tests that assert a score. Trained from random weights on 84 examples the
    tiny BERT missed a whole class for 1 to 3 seeds in 5, whatever the recipe; on 168, at lr 1e-3 for
    12 epochs in batches of 8, it learned all three classes for each of 5 seeds, with 2 or 4 layers."""
    return write_csv(tmp_path / "learnable.csv", synthetic_rows(80))


# -- databases: every storage and queue test runs on SQLite and on PostgreSQL ------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def db(db_url):
    """The schema at head through Alembic, as the app creates it."""
    from storage.db import Database

    database = Database(db_url)
    await database.upgrade()
    yield database
    await database.close()


@pytest.fixture
def settings_for(tmp_path, tiny_base):
    """Settings for the queue tests: data under tmp_path, the tiny BERT as base, fast timings."""
    from core.settings import Settings

    def make(db_url: str, **changes):
        """``changes``: a section's name with a dict of its keys (``web={"page_size": 5}``), or a [queue] key."""
        sections = {
            "storage": {"data_dir": str(tmp_path / "data"), "database_url": db_url},
            "base_models": {"tiny": str(tiny_base)},
            "training": {"base": "tiny", "layers": 2, "epochs": 2, "batch_size": 16, "threads": 1, "max_length": 16},
            "queue": {"dispatch_seconds": 0.2, "reap_seconds": 0.3, "heartbeat_seconds": 0.3, "kill_grace_seconds": 2},
        }
        for key, value in changes.items():
            section, value = (key, value) if key in Settings.model_fields else ("queue", {key: value})
            sections[section] = sections.get(section, {}) | value
        return Settings().changed(**sections)

    return make


@pytest.fixture
async def service(db, settings_for, db_url):
    """The service on the test database, with the queue tests' settings (no scheduler)."""
    from service import Service

    return Service(db, settings_for(db_url))


@pytest.fixture
async def make(db, db_url, settings_for):
    """Build a service and a scheduler on the test database; stops every scheduler at the end."""
    made = []

    from jobs.executor import LocalExecutor
    from jobs.scheduler import Scheduler
    from service import Service

    def build(target=None, executor=None, **changes):
        """``target``: the local worker's entry point (a slowed or broken one); ``executor``: another
        executor's class, built with these settings (``RayExecutor``); ``changes`` as ``settings_for``'s."""
        settings = settings_for(db_url, **changes)
        sched = Scheduler(db, settings, executor=executor(settings) if executor else LocalExecutor(target), slots=1)
        made.append(sched)
        return Service(db, settings), sched

    yield build
    for sched in made:
        await sched.stop(requeue=False)  # ends its workers (and a Ray runtime it started)
