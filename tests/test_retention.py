"""Retention and the disk quota, on SQLite and PostgreSQL: what `tinytutor gc` removes (old uploads
nothing uses, failed and cancelled jobs' files, stale staged uploads) and what it always keeps (a
queued job's upload, a stored model's dataset, assignment files, anything recent); a class over its
disk quota is refused before anything is stored."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta

import pytest
from helpers import ALICE, BOB, GOOD, HIDDEN, TEACH, csv_bytes, stored_files, synthetic_rows
from sqlalchemy import select, update

from service.errors import InvalidRequest, QuotaExceeded
from storage.models import Dataset, Job, Model, Report, utcnow

OLD = timedelta(days=40)


async def age(db, job_id: int, status: str | None = None, by: timedelta = OLD) -> str:
    """Make a job and its upload ``by`` old (finished then, with ``status``); returns the upload's path."""
    async with db.transaction() as s:
        job = await s.get(Job, job_id)
        values = {"created_at": utcnow() - by}
        if status:
            values |= {"status": status, "finished_at": utcnow() - by}
        await s.execute(update(Job).where(Job.id == job_id).values(**values))
        await s.execute(update(Dataset).where(Dataset.id == job.dataset_id).values(created_at=utcnow() - by))
        return (await s.get(Dataset, job.dataset_id)).path


def distinct(seed: int) -> bytes:
    return csv_bytes(synthetic_rows(20, seed=seed))


async def test_gc_removes_what_nothing_uses_and_keeps_the_rest(service, db, db_url, monkeypatch, tmp_path, capsys):
    from cli import main

    await service.set_quotas(TEACH, max_queued_per_student=10, max_jobs_per_day=20)
    store = service.store
    failed = (await service.submit(ALICE, distinct(1), "old-failed.csv", name="f")).job.id
    old_failed = await age(db, failed, "failed")
    store.log_path(failed).write_text("Traceback: the old failure")
    (store.root / "models" / f"job-{failed}-a1").mkdir(parents=True)
    (store.root / "models" / f"job-{failed}-a1" / "partial.bin").write_bytes(b"x" * 1000)
    modelled = (await service.submit(ALICE, distinct(2), "modelled.csv", name="m")).job.id
    old_modelled = await age(db, modelled, "succeeded")
    async with db.transaction() as s:
        s.add(Model(guild_id="class-a", owner_id="alice", job_id=modelled, name="m", version=1, base_model="tiny",
                    layers_kept=[0], layers_base=4, params=1, params_base=2, labels=["a"], metrics={},
                    path=f"models/job-{modelled}-a1"))
    # a finished job whose model the student deleted: its upload is nothing's any more
    deleted = (await service.submit(ALICE, distinct(6), "deleted.csv", name="d")).job.id
    old_deleted = await age(db, deleted, "succeeded")
    async with db.transaction() as s:
        s.add(Report(job_id=deleted, metrics={"macro_f1": 0.9}, report_text="", confusion_png="", curve_png=""))
    queued = (await service.submit(BOB, distinct(3), "queued.csv", name="q")).job.id
    old_queued = await age(db, queued)  # still queued, 40 days on
    recent = (await service.submit(BOB, distinct(4), "recent.csv", name="r")).job.id
    recent_path = await age(db, recent, "cancelled", by=timedelta(days=2))
    store.log_path(recent).write_text("cancelled two days ago")
    # the same content twice: an old unused upload and a queued job's newer one share one file
    twice = (await service.submit(BOB, GOOD, "twice.csv", name="t1")).job.id
    shared = await age(db, twice, "failed")
    await service.submit(BOB, GOOD, "twice-again.csv", name="t2")
    await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"))
    async with db.transaction() as s:
        await s.execute(update(Dataset).where(Dataset.owner_id == "teacher").values(created_at=utcnow() - OLD))
        hidden_path = (await s.execute(select(Dataset.path).where(Dataset.owner_id == "teacher"))).scalar_one()
    stale, fresh = store.root / "tmp" / "upload-crashed.csv", store.root / "tmp" / "upload-now.csv"
    stale.write_bytes(b"half a file"), fresh.write_bytes(b"being read")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    before = sorted(stored_files(service))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTUTOR_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TINYTUTOR_DATABASE_URL", db_url)
    (tmp_path / "config.toml").write_text(f'[storage]\ndata_dir = "{store.root}"\n')
    assert await asyncio.to_thread(main, ["gc", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert sorted(stored_files(service)) == before  # a dry run removes nothing
    assert planned["uploads"] == sorted([old_failed, old_deleted]) and planned["jobs"] == [failed]  # twice left no files
    assert planned["staged"] == ["tmp/upload-crashed.csv"] and planned["dry_run"] is True

    assert await asyncio.to_thread(main, ["gc"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 2 uploads no job, model or assignment uses (kept 30 days), the files of 1 failed "
                          "or cancelled job (kept 7 days) and 1 stale staged upload")
    gone = set(before) - set(stored_files(service))
    assert gone == {store.path(old_failed), store.path(old_deleted), store.log_path(failed), store.root / "models" / f"job-{failed}-a1" /
                    "partial.bin", stale}
    for kept in (old_modelled, old_queued, recent_path, shared, hidden_path):
        assert store.path(kept).is_file(), kept
    assert store.log_path(recent).is_file() and fresh.is_file()
    async with db.transaction() as s:
        removed = list((await s.execute(select(Dataset.name).where(Dataset.removed_at.is_not(None)))).scalars())
    assert sorted(removed) == ["deleted.csv", "old-failed.csv"]
    # the history stays, and a rerun of the removed upload says what happened
    assert (await service.job(ALICE, failed)).status == "failed"
    with pytest.raises(InvalidRequest, match=r"\(deleted.csv\) is no longer stored.*kept 30 days.*Attach it again"):
        await service.submit(ALICE, None, None, name="again", like=deleted)
    assert await asyncio.to_thread(main, ["gc", "--json"]) == 0  # nothing more to do
    again = json.loads(capsys.readouterr().out)
    assert (again["uploads"], again["jobs"], again["files"], again["bytes"]) == ([], [], 0, 0)


async def test_a_class_over_its_disk_quota_is_refused_before_anything_is_stored(service, db):
    await service.set_quotas(TEACH, max_disk_mb=1, max_queued_per_student=10)
    await service.submit(ALICE, GOOD, "t.csv", name="first")
    model_dir = service.store.root / "models" / "job-99-a1"
    model_dir.mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(b"\0" * 999_000)
    async with db.transaction() as s:
        s.add(Model(guild_id="class-a", owner_id="alice", name="big", version=1, base_model="tiny", layers_kept=[0],
                    layers_base=4, params=1, params_base=2, labels=["a"], metrics={}, path="models/job-99-a1"))
    files = sorted(stored_files(service))
    with pytest.raises(QuotaExceeded, match=r"already stores 1\.0 MB of uploads and models.*max_disk_mb = 1\)"):
        await service.submit(BOB, distinct(5), "more.csv", name="second")
    assert sorted(stored_files(service)) == files
    await service.set_quotas(TEACH, max_disk_mb=2)
    assert (await service.submit(BOB, distinct(5), "more.csv", name="second")).job.status == "queued"


async def test_the_scheduler_process_cleans_up_on_its_own(db, settings_for, db_url):
    from service.runtime import Runtime

    settings = settings_for(db_url, storage={"gc_hours": 0.0003})  # about a second
    rt = await Runtime.open(settings, db_url)
    try:
        stale = rt.service.store.root / "tmp" / "upload-left.csv"
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"x")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        await rt.start_jobs()
        assert "gc" in rt.periodic.names
        for _ in range(100):  # its first turn comes gc_hours after start
            if not stale.exists():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the periodic clean-up never removed the stale staged upload")
    finally:
        await rt.close()
