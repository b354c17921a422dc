"""The queue with real worker processes (spawned), on SQLite and PostgreSQL: a job's whole life,
a worker killed mid-training, a restart with a job running, cancel and time limit, the outbox."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from helpers import ALICE, BOB, GOOD, TEACH, get_job, status_is, training, wait_for
from queue_helpers import crashing_run_job, environment_run_job, flaky_outcome_run_job, slow_run_job
from sqlalchemy import select

from jobs.outbox import OutboxPump
from storage.db import Database
from storage.models import Model, Outbox, Report

# For tests whose point does not depend on the database (a job's outcome is recorded by the same queries
# the two-database tests here exercise): SQLite only, to keep `make test` short.
ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def run_to_the_end(make, db, target):
    """One job through a scheduler whose workers run ``target``, until it succeeds or fails."""
    service, sched = make(target=target)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="topics")
    await sched.start()
    try:
        return service, await wait_for(status_is(db, sub.job.id, "succeeded", "failed"))
    finally:
        await sched.stop()


async def test_a_job_runs_in_its_own_process_and_finishes_in_one_transaction(make, db):
    service, sched = make()
    sub = await service.submit(ALICE, GOOD, "topics.csv", name="topics", channel_id="chan-1")
    stages = set()
    await sched.start()
    try:
        async def done():
            job = await get_job(db, sub.job.id)
            stages.add((job.progress or {}).get("stage"))
            return job if job.status in ("succeeded", "failed") else None

        job = await wait_for(done)
    finally:
        await sched.stop()
    assert job.status == "succeeded", job.error
    assert job.attempts == 1 and job.lease is None and job.worker_pid != os.getpid()
    assert stages - {None, "starting"}, "the worker never wrote its progress"
    assert job.progress["stage"] == "done"
    async with db.transaction() as s:
        model = (await s.execute(select(Model).where(Model.job_id == job.id))).scalar_one()
        report = (await s.execute(select(Report).where(Report.job_id == job.id))).scalar_one()
        outbox = list((await s.execute(select(Outbox))).scalars())
    assert (model.owner_id, model.name, model.version, model.visibility) == ("alice", "topics", 1, "private")
    assert model.labels == ["food", "sports", "weather"] and len(model.layers_kept) == 2
    assert service.store.path(report.confusion_png).is_file() and service.store.path(report.curve_png).is_file()
    assert "precision" in report.report_text
    assert [(o.kind, o.job_id, o.channel_id) for o in outbox] == [("job_succeeded", job.id, "chan-1")]
    assert outbox[0].payload["model_id"] == model.id and "macro_f1" in outbox[0].payload
    # the student's first model becomes their default, and predicting with it works
    view, preds = await service.predict(ALICE, None, ["pizza and cheese for dinner", "rain and snow today"])
    assert view.id == model.id and {p.label for p in preds} <= {"food", "sports", "weather"}
    jobs = await service.jobs(ALICE)
    assert jobs[0].model_id == model.id and jobs[0].macro_f1 is not None
    rep = await service.report(ALICE, job.id)
    assert rep.confusion_png.is_file() and rep.metrics["macro_f1"] == model.metrics["macro_f1"]
    # deleting the model removes its files and leaves the report whole
    await service.delete_model(ALICE, model.id)
    assert not service.store.path(model.path).exists()
    rep = await service.report(ALICE, job.id)
    assert rep.model_id is None and rep.confusion_png.is_file() and rep.curve_png.is_file()


async def test_a_worker_killed_mid_training_is_requeued_then_fails_after_max_attempts(make, db):
    service, sched = make(target=slow_run_job, max_attempts=2, heartbeat_timeout_seconds=600)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="victim", params={"epochs": 20})
    await sched.start()
    try:
        for attempt in (1, 2):
            job = await wait_for(training(db, sub.job.id))
            assert job.attempts == attempt
            # workers train at a lower CPU priority than the bot that serves predictions
            assert os.getpriority(os.PRIO_PROCESS, job.worker_pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
            os.kill(job.worker_pid, signal.SIGKILL)  # like the kernel's out-of-memory killer
            if attempt == 1:
                async def requeued():
                    job = await get_job(db, sub.job.id)
                    return job if job.status == "queued" or job.attempts == 2 else None

                job = await wait_for(requeued, every=0.05)
                assert "stopped unexpectedly once" in job.error  # kept for the instructor, not shown yet
        job = await wait_for(status_is(db, sub.job.id, "failed"))
    finally:
        await sched.stop()
    assert job.attempts == 2
    assert "stopped unexpectedly 2 times" in job.error and "Traceback" not in job.error
    assert not list(service.store.root.glob("models/.job-*")), "a killed run's temporary files were left"
    async with db.transaction() as s:
        kinds = [o.kind for o in (await s.execute(select(Outbox))).scalars()]
    assert kinds == ["job_failed"]


async def test_after_a_restart_no_job_is_left_running_without_a_worker(make, db, db_url):
    service, first = make(target=slow_run_job, heartbeat_timeout_seconds=600)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="restart", params={"epochs": 20})
    await first.start()
    job = await wait_for(training(db, sub.job.id))
    await first.crash()  # the whole service dies: scheduler and worker gone, nothing recorded
    assert (await get_job(db, job.id)).status == "running"

    other_db = Database(db_url)  # a new process would have its own engine
    try:
        _, second = make()
        second.db = other_db
        await second.recover()  # at start, before any heartbeat timeout
        job = await get_job(db, job.id)
        assert job.status == "queued" and job.attempts == 1 and job.lease is None
        await second.start()
        job = await wait_for(status_is(db, job.id, "succeeded", "failed"))
        await second.stop()
    finally:
        await other_db.close()
    assert job.status == "succeeded" and job.attempts == 2
    assert job.error is None  # the first attempt's crash is not the error of a job that succeeded
    assert not service.store.path(service.store.model_rel(job.id, 1)).exists()


@ONE_DATABASE
async def test_an_internal_error_reaches_the_student_as_a_plain_message_and_the_log_as_a_traceback(make, db):
    service, job = await run_to_the_end(make, db, crashing_run_job)
    assert job.attempts == 1  # a bug is not retried like a crash
    assert "internal error" in job.error and f"job {job.id}" in job.error
    assert "secret internals" not in job.error and "Traceback" not in job.error
    log = service.store.log_path(job.id).read_text()
    assert "Traceback" in log and "secret internals" in log


async def test_stopping_the_scheduler_puts_running_jobs_back_without_using_an_attempt(make, db):
    service, sched = make(target=slow_run_job)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="later", params={"epochs": 20})
    await sched.start()
    job = await wait_for(training(db, sub.job.id))
    pid = job.worker_pid
    await sched.stop()
    job = await get_job(db, job.id)
    assert (job.status, job.attempts, job.lease, job.worker_pid) == ("queued", 0, None, None)
    await wait_for(_dead(pid), timeout=15)


async def test_cancel_of_a_running_job_ends_its_process(make, db):
    service, sched = make(target=slow_run_job)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="stop me", params={"epochs": 20})
    await sched.start()
    try:
        job = await wait_for(training(db, sub.job.id))
        pid = sched.running[job.id].handle.pid
        view = await service.cancel(ALICE, job.id)
        assert view.status in ("running", "cancelled")  # the scheduler ends the process within a second
        job = await wait_for(status_is(db, job.id, "cancelled"), timeout=30)
        await wait_for(_dead(pid), timeout=15)
    finally:
        await sched.stop()
    assert job.finished_at is not None
    async with db.transaction() as s:
        assert (await s.execute(select(Model))).first() is None
        kinds = [o.kind for o in (await s.execute(select(Outbox))).scalars()]
    assert kinds == ["job_cancelled"]


def _dead(pid: int):
    async def check():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    check.__name__ = "worker process ended"
    return check


@ONE_DATABASE
async def test_a_job_over_the_time_limit_is_stopped_and_failed(make, db):
    service, sched = make(target=slow_run_job, time_limit_minutes=0.1)
    sub = await service.submit(ALICE, GOOD, "t.csv", name="slow", params={"epochs": 20})
    await sched.start()
    try:
        job = await wait_for(status_is(db, sub.job.id, "failed", "succeeded"), timeout=60)
    finally:
        await sched.stop()
    assert job.status == "failed" and "limit of 0.1 minutes" in job.error
    assert not sched.running


async def test_two_schedulers_never_claim_the_same_job(make, db, db_url):
    service, _ = make()
    await service.set_quotas(TEACH, max_queued_per_student=20, max_running_per_student=20)
    for i in range(12):
        await service.submit(ALICE if i % 2 else BOB, GOOD, "t.csv", name=f"m{i}")
    dbs = [Database(db_url) for _ in range(3)]
    try:
        scheds = []
        for d in dbs:
            _, s = make()
            s.db = d
            scheds.append(s)

        async def claim_all(s):
            got = []
            while (job := await s.claim_next()) is not None:
                got.append(job.id)
            return got

        claimed = await asyncio.gather(*(claim_all(s) for s in scheds))
    finally:
        for d in dbs:
            await d.close()
    ids = [i for c in claimed for i in c]
    assert sorted(ids) == list(range(1, 13)), claimed  # each job exactly once


async def test_outbox_rows_survive_a_restart_and_are_delivered_once(make, db, db_url):
    service, _ = make()
    for i in range(3):
        sub = await service.submit(ALICE, GOOD, "t.csv", name=f"m{i}")
        await service.cancel(ALICE, sub.job.id)
    sent, fail = [], {"on": True}

    async def deliver(row, part_sent):
        if fail["on"]:
            raise ConnectionError("Discord is down")
        sent.append((row.id, row.kind, row.job_id))

    assert await OutboxPump(db, deliver).deliver_once() == 0  # Discord down: nothing delivered, all kept
    async with db.transaction() as s:
        rows = list((await s.execute(select(Outbox))).scalars())
        for r in rows:
            assert r.attempts == 1 and "Discord is down" in r.last_error
            r.next_attempt_at = r.created_at  # skip the back-off
    fail["on"] = False
    restarted = Database(db_url)  # the bot restarts
    try:
        notifiers = [OutboxPump(restarted, deliver), OutboxPump(db, deliver)]
        counts = await asyncio.gather(*(n.deliver_once() for n in notifiers))
        assert sum(counts) == 3
        assert await notifiers[0].deliver_once() == 0
    finally:
        await restarted.close()
    assert sorted(k for _, k, _ in sent) == ["job_cancelled"] * 3 and len({i for i, _, _ in sent}) == 3


@ONE_DATABASE
async def test_a_distillation_job_learns_from_a_class_model_in_its_worker(make, db):
    """A job with a teacher model: the worker distils from the stored teacher; its report shows both."""
    service, sched = make()
    first = await service.submit(ALICE, GOOD, "topics.csv", name="teacher", params={"layers": 4, "epochs": 3})
    await sched.start()
    try:
        teacher_job = await wait_for(status_is(db, first.job.id, "succeeded", "failed"))
        assert teacher_job.status == "succeeded", teacher_job.error
        teacher = (await service.jobs(ALICE))[0].model_id
        sub = await service.submit(ALICE, GOOD, "topics.csv", name="student",
                                   params={"teacher_model_id": teacher, "layers": 2, "epochs": 3, "augment": 1})
        job = await wait_for(status_is(db, sub.job.id, "succeeded", "failed"))
    finally:
        await sched.stop()
    assert job.status == "succeeded", job.error
    assert job.params["method"] == "distill"
    rep = await service.report(ALICE, job.id)
    m = rep.metrics
    assert m["method"] == "distill" and m["teacher"]["layers"] == 4 and len(m["layers_kept"]) == 2
    assert m["teacher"]["source"].endswith(f"job-{first.job.id}-a1") and "retained" in m
    assert m["engine"].startswith("onnxruntime")


async def test_a_periodic_task_still_running_at_its_next_turn_is_not_a_warning(caplog):
    """Slow delivery (Discord slow to answer) makes APScheduler skip turns: expected, so not logged."""
    import logging
    from datetime import UTC, datetime

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from jobs.periodic import quiet_skipped_runs

    calls = []

    async def slow():
        calls.append(1)
        await asyncio.sleep(0.5)

    quiet_skipped_runs()
    aps = AsyncIOScheduler(timezone=UTC)
    aps.add_job(slow, "interval", seconds=0.05, max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    with caplog.at_level(logging.WARNING):
        aps.start()
        await asyncio.sleep(0.4)
        aps.shutdown(wait=False)
        await asyncio.sleep(0.2)
    assert calls == [1]  # its later turns were skipped while it ran...
    assert not [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]  # ...quietly


@ONE_DATABASE
async def test_a_database_blip_at_the_final_write_does_not_lose_the_training(make, db):
    service, job = await run_to_the_end(make, db, flaky_outcome_run_job)
    assert job.status == "succeeded" and job.attempts == 1  # recorded on the third try, not trained again
    async with db.transaction() as s:
        models = list((await s.execute(select(Model).where(Model.job_id == job.id))).scalars())
    assert len(models) == 1 and service.store.path(models[0].path).is_dir()
    log = service.store.log_path(job.id).read_text()
    assert "recording its model failed (attempt 1 of 6), again in 0.5 s" in log
    assert "attempt 2 of 6" in log and "attempt 3 of 6" not in log


async def test_two_same_named_jobs_finishing_at_once_get_the_next_two_versions(make, db):
    from storage import queue as q

    service, sched = make()
    await service.set_quotas(TEACH, max_running_per_student=2, max_queued_per_student=5)
    for _ in range(2):
        await service.submit(ALICE, GOOD, "t.csv", name="topics")
    jobs = [await sched.claim_next(), await sched.claim_next()]
    metrics = {"macro_f1": 0.9, "accuracy": 0.9, "baseline_macro_f1": 0.5, "baseline_accuracy": 0.5,
               "train_seconds": 1, "ms_per_message": 1, "size_bytes": 1, "best_epoch": 1, "method": "full",
               "base_model": "tiny", "layers_kept": [0], "layers_base": 4, "params": 1, "params_base": 2,
               "labels": ["a", "b"], "report_text": ""}

    async def finish(job):  # one transaction each, no retries: the two race as two workers would
        async with db.transaction() as s:
            model = await q.succeed(s, job.id, job.lease, f"models/job-{job.id}-a1", metrics, "c.png", "k.png")
            await asyncio.sleep(0.2)  # hold the transaction open while the other one runs
            return model.version

    assert sorted(await asyncio.gather(*(finish(j) for j in jobs))) == [1, 2]


async def test_a_worker_starts_without_the_bots_secrets(tmp_path, monkeypatch):
    import json

    from jobs.executor import LocalExecutor

    secrets = {"DISCORD_TOKEN": "bot-token", "TINYTUTOR_WEB_SECRET": "signing", "CLASS_WEB_SECRET": "other",
               "TINYTUTOR_DATABASE_URL": "postgresql+asyncpg://u:pw@db/x", "RAY_AUTH_TOKEN": "ray"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    executor = LocalExecutor(environment_run_job, hidden_env=("CLASS_WEB_SECRET",))
    from types import SimpleNamespace

    # what the executor reads of a WorkerPayload (the target writes the environment and stops)
    handle = await executor.launch(SimpleNamespace(job_id=1, log_path=str(tmp_path / "logs" / "job-1.log")))
    await asyncio.to_thread(handle.process.join, 60)
    seen = set(json.loads((tmp_path / "logs" / "job-1.log.env").read_text()))
    assert "PATH" in seen and not seen & set(secrets)
    assert all(os.environ[k] == v for k, v in secrets.items())  # this process keeps them


@ONE_DATABASE
async def test_a_teacher_unshared_after_a_classmate_queued_a_distillation_is_not_used(make, db):
    service, sched = make()
    await service.ensure_class("class-a")
    async with db.transaction() as s:
        teacher = Model(guild_id="class-a", owner_id="alice", name="teach", version=1, base_model="tiny",
                        layers_kept=[0, 1], layers_base=4, params=1, params_base=2,
                        labels=["food", "sports", "weather"], metrics={"macro_f1": 0.9}, visibility="class",
                        path="models/fake-teacher")
        s.add(teacher)
        await s.flush()
        teacher_id = teacher.id
    sub = await service.submit(BOB, GOOD, "t.csv", name="student", params={"teacher_model_id": teacher_id})
    await service.share_model(ALICE, teacher_id, shared=False)
    assert await sched.dispatch() == 0
    job = await get_job(db, sub.job.id)
    assert job.status == "failed" and "teach v1 is no longer shared with the class" in job.error


async def test_schedulers_claiming_at_once_keep_a_student_to_their_running_limit(make, db, db_url):
    service, _ = make()
    await service.set_quotas(TEACH, max_queued_per_student=20)  # max_running_per_student stays 1
    for i in range(8):
        await service.submit(ALICE, GOOD, "t.csv", name=f"m{i}")
    dbs = [Database(db_url) for _ in range(4)]
    try:
        scheds = []
        for d in dbs:
            _, s = make()
            s.db = d
            scheds.append(s)
        claimed = await asyncio.gather(*(s.claim_next() for s in scheds))
    finally:
        for d in dbs:
            await d.close()
    assert len([j for j in claimed if j is not None]) == 1, claimed
