"""Load and faults, on SQLite and PostgreSQL: a class submitting at once to a fresh database, a
database file emptied under a full data directory, a scheduler killed while its worker trains on,
a worker that cannot start, a worker killed while saving, damaged weights."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from helpers import ALICE, BOB, GOOD, get_job
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Job

EXE = str(Path(sys.executable).with_name("tinytutor"))


async def test_thirty_students_submit_at_once_to_a_fresh_database(db_url, tmp_path):
    """Every process migrates at start; none may fail for a lock or a race, none may be lost."""
    data = tmp_path / "class.csv"
    data.write_bytes(GOOD)
    env = {**os.environ, "TINYTUTOR_DATABASE_URL": db_url}
    procs = [subprocess.Popen([EXE, "queue", "submit", str(data), "--guild", "g", "--user", f"student{i}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(30)]
    results = await asyncio.gather(*(asyncio.to_thread(p.communicate, timeout=300) for p in procs))
    failed = [(p.returncode, err[-300:]) for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0]
    assert not failed, failed
    db = Database(db_url)
    try:
        async with db.transaction() as s:
            assert (await s.execute(select(func.count()).select_from(Job))).scalar_one() == 30
    finally:
        await db.close()


def test_an_emptied_database_beside_a_class_data_directory_is_refused(tmp_path):
    data = tmp_path / "class.csv"
    data.write_bytes(GOOD)
    run = subprocess.run([EXE, "queue", "submit", str(data), "--guild", "g", "--user", "alice"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    db_file = tmp_path / "tinytutor-data" / "tinytutor.db"
    assert db_file.stat().st_size > 0
    db_file.write_bytes(b"")  # truncated by an accident
    for wal in db_file.parent.glob("tinytutor.db-*"):
        wal.unlink()
    run = subprocess.run([EXE, "queue", "list", "--guild", "g"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "is empty, but the data directory" in run.stderr and "datasets" in run.stderr
    run = subprocess.run([EXE, "queue", "list", "--guild", "g"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "is empty" in run.stderr  # still refused: no empty schema was created


async def test_a_live_worker_of_a_killed_scheduler_keeps_its_slot(make, db):
    """A restarted scheduler must not start a second training beside a worker that outlived the first."""
    service, _ = make()
    first = await service.submit(ALICE, GOOD, "t.csv", name="first")
    await service.submit(BOB, GOOD, "t.csv", name="second")
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the worker, still training
    try:
        async with db.transaction() as s:
            job = await s.get(Job, first.job.id)
            job.status, job.lease, job.attempts = "running", "old-lease", 1
            job.worker_host, job.worker_pid = "this-host", survivor.pid
        _, restarted = make()
        restarted.host = "this-host"
        await restarted.recover()
        assert await restarted.dispatch() == 0  # cpu_slots = 1, held by the survivor
        survivor.kill()
        survivor.wait(10)
        assert await restarted.dispatch() == 1  # its slot is free once it exits
    finally:
        survivor.kill()
        for r in list(restarted.running.values()):
            await r.handle.stop(0)


async def test_a_worker_that_cannot_start_fails_its_job_at_once_with_the_reason(make, db, tmp_path):
    service, sched = make()
    sub = await service.submit(ALICE, GOOD, "t.csv", name="nowhere")
    logs = Path(sched.store.root) / "logs"
    logs.parent.mkdir(parents=True, exist_ok=True)
    logs.write_text("a file where the log folder should be")  # as unwritable as a read-only directory
    assert await sched.dispatch() == 0
    job = await get_job(db, sub.job.id)
    assert job.status == "failed" and job.attempts == 1 and "could not start" in job.error
    assert "memory" not in job.error and not sched.running


async def test_a_model_directory_left_by_a_worker_killed_while_saving_is_removed(make, db):
    service, sched = make()
    sub = await service.submit(ALICE, GOOD, "t.csv", name="m")
    orphan = sched.store.path(sched.store.model_rel(sub.job.id, 1))
    orphan.mkdir(parents=True)
    (orphan / "model.safetensors").write_bytes(b"half")
    temp = orphan.parent / f".{orphan.name}.x1y2"
    temp.mkdir()
    await sched.recover()  # at start: nothing owns them
    assert not orphan.exists() and not temp.exists()
    job = await sched.claim_next()
    async with db.transaction() as s:  # another machine trains it, against the same data directory
        (await s.get(Job, job.id)).worker_host = "another-host"
    running = sched.store.path(sched.store.model_rel(job.id, job.attempts))
    (running.parent / f".{running.name}.tmp1").mkdir()  # a running attempt's files are not swept
    await sched.recover()
    assert (running.parent / f".{running.name}.tmp1").exists()


def test_damaged_weights_are_refused_with_the_file_named(tmp_path, tiny_base, capsys):
    import shutil

    from cli import main

    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    (broken / "model.safetensors").write_bytes(b"\x00\x01 not safetensors")
    data = tmp_path / "class.csv"
    data.write_bytes(GOOD)
    os.chdir(tmp_path)
    assert main(["queue", "submit", str(data), "--guild", "g", "--user", "u", "--base", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "damaged" in err and "Traceback" not in err
    assert main(["train", str(data), "--base", str(broken), "--out", str(tmp_path / "o")]) == 1
    assert "damaged" in capsys.readouterr().err
    assert main(["predict", str(broken), "hello"]) == 1  # no ONNX file beside it: PyTorch reads the weights
    assert "damaged" in capsys.readouterr().err

