"""The Ray executor through the same lifecycle as local workers, on a local Ray runtime (2 CPUs,
started and stopped here): a job to success with its model coming back through Ray (no shared
files), a cancel, a killed Ray worker requeued then failed, the time limit."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import ALICE, GOOD, HIDDEN, LEARNABLE, TEACH, get_job, status_is, training, wait_for

from jobs.executor import pid_alive
from jobs.ray_executor import RayExecutor, start_local_runtime

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database is tested elsewhere


@pytest.fixture(scope="module", autouse=True)
def ray_runtime():
    import ray

    start_local_runtime(2, configure_logging=False)  # as RayExecutor starts one
    yield
    ray.shutdown()


def test_the_local_runtime_refuses_a_client_without_its_token(tmp_path, db_url, monkeypatch):
    import subprocess
    import sys

    import ray

    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    assert token.stat().st_mode & 0o777 == 0o600
    # Ray's servers listen on every interface: someone who reaches the port with a wrong token gets nothing
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {
        "HOME": str(tmp_path), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    address = ray.get_runtime_context().gcs_address
    probe = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r}); print('connected')"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode != 0 and "connected" not in probe.stdout
    assert f"Failed to connect to Ray cluster at {address}" in probe.stderr
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(OSError, match="RAY_AUTH_MODE=disabled would let anyone"):
        start_local_runtime(1)


LONG = {"patience": 1000}  # [training] for long_job: no early stopping


async def long_job(service, name: str):
    """A job that trains for a minute or more: 3000 epochs of the tiny model, and no early stopping."""
    await service.set_quotas(TEACH, max_epochs=5000)
    assert service.settings.training.patience == 1000  # no early stopping (make(..., training=LONG))
    return await service.submit(ALICE, GOOD, "t.csv", name=name, params={"epochs": 3000})


async def ray_worker_pid(sched, job_id: int) -> int:
    async def reported():
        r = sched.running.get(job_id)
        return r.handle.worker_pid if r is not None else None

    return await wait_for(reported, timeout=120)


async def test_a_job_runs_to_success_as_a_ray_task_and_its_model_comes_back(make, db):
    service, sched = make(executor=RayExecutor)
    await service.create_assignment(TEACH, "topics", (HIDDEN, "hidden.csv"))  # its hidden set travels as bytes too
    sub = await service.submit(ALICE, LEARNABLE, "topics.csv", name="on ray", assignment="topics",
                               params={"epochs": 12, "lr": 1e-3, "batch_size": 8})  # enough to learn the topics
    await sched.start()
    try:
        job = await wait_for(status_is(db, sub.job.id, "succeeded", "failed"), timeout=180)
    finally:
        await sched.stop()
    assert job.status == "succeeded", job.error
    assert job.worker_pid is None  # no process of this host ran it
    views = await service.jobs(ALICE)
    model_dir = service.store.path(service.store.model_rel(job.id, 1))
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "onnx" / "model_qint8.onnx").is_file()
    report = await service.report(ALICE, job.id)
    spec = report.metrics["spec"]
    root = str(service.store.root)
    assert not spec["data_path"].startswith(root) and not spec["out_dir"].startswith(root)  # trained from bytes
    assert report.standing.rank == 1 and set(report.standing.per_class_f1) == {"food", "sports", "weather"}
    _, preds = await service.predict(ALICE, views[0].model_id, ["pizza and soup"])
    assert preds[0].label == "food"


async def test_cancel_ends_the_ray_task(make, db):
    service, sched = make(executor=RayExecutor, training=LONG)
    sub = await long_job(service, "stop me")
    await sched.start()
    try:
        job = await wait_for(training(db, sub.job.id), timeout=120)
        pid = await ray_worker_pid(sched, job.id)
        await service.cancel(ALICE, job.id)
        job = await wait_for(status_is(db, job.id, "cancelled"), timeout=30)

        async def gone():
            return not pid_alive(pid)

        await wait_for(gone, timeout=30)  # ray.cancel(force=True) killed the worker
    finally:
        await sched.stop()
    assert not list(service.store.root.glob("models/*"))


async def test_a_killed_ray_worker_is_requeued_then_failed_after_max_attempts(make, db):
    service, sched = make(executor=RayExecutor, training=LONG, max_attempts=2, heartbeat_timeout_seconds=600)
    sub = await long_job(service, "victim")
    await sched.start()
    try:
        for attempt in (1, 2):
            async def attempt_running(n=attempt):
                job = await get_job(db, sub.job.id)
                return job if job.status == "running" and job.attempts == n else None

            await wait_for(attempt_running, timeout=120)
            pid = await ray_worker_pid(sched, sub.job.id)
            os.kill(pid, signal.SIGKILL)  # the node's out-of-memory killer, say
        job = await wait_for(status_is(db, sub.job.id, "failed"), timeout=60)
    finally:
        await sched.stop()
    assert job.attempts == 2 and "stopped unexpectedly 2 times" in job.error


async def test_the_time_limit_ends_a_ray_task(make, db):
    service, sched = make(executor=RayExecutor, training=LONG, time_limit_minutes=0.1)
    sub = await long_job(service, "too long")
    await sched.start()
    try:
        job = await wait_for(status_is(db, sub.job.id, "failed", "succeeded"), timeout=120)
    finally:
        await sched.stop()
    assert job.status == "failed" and "longer than this class's limit of 0.1 minutes" in job.error
