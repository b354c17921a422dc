"""Worker targets for the queue tests (module level, so a spawned process can import them)."""

from __future__ import annotations

import time


def slow_run_job(payload) -> None:
    """The real worker, with each training step slowed down so a test can act mid-training."""
    import trainer.pipeline as pipeline
    from jobs.worker import run_job

    real = pipeline.run_training

    def slowed(spec, progress, registry=None, hidden=None):
        def on_progress(p):
            progress(p)
            if p.stage == "training":
                time.sleep(0.5)

        return real(spec, on_progress, registry, hidden)

    pipeline.run_training = slowed
    run_job(payload)


def crashing_run_job(payload) -> None:
    """The real worker, with a bug in training: the student must get a plain message, the log the traceback."""
    import trainer.pipeline as pipeline
    from jobs.worker import run_job

    def broken(spec, progress, registry=None, hidden=None):
        raise RuntimeError("secret internals: tensor shape mismatch at layer 3")

    pipeline.run_training = broken
    run_job(payload)


def flaky_outcome_run_job(payload) -> None:
    """The real worker, with the database failing the first two tries of its final write (a blip)."""
    from sqlalchemy.exc import OperationalError

    import storage.queue as q
    from jobs.worker import run_job

    real, calls = q.succeed, []

    async def flaky(session, *args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("INSERT INTO models ...", {}, Exception("server closed the connection unexpectedly"))
        return await real(session, *args, **kwargs)

    q.succeed = flaky
    run_job(payload)


def environment_run_job(payload) -> None:
    """Write the worker's environment (names only) next to its log, then stop: what a job's process can see."""
    import json
    import os

    with open(payload.log_path + ".env", "w") as f:
        json.dump(sorted(os.environ), f)
