"""One training job in its own OS process: ``run_job(payload)``.

The payload is a ``jobs.payload.WorkerPayload`` (built by ``Scheduler.payload``). The worker trains in a thread while its
event loop writes a heartbeat with the latest progress every few seconds; it records the outcome
itself, conditional on the lease its claim wrote, so a job that was cancelled or handed to another
worker meanwhile is never overwritten. Tracebacks go to the job's log file, never to the student.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time

from .outcome import failure_message, prepare_process, record_failure, record_success
from .payload import WorkerPayload

log = logging.getLogger("tinytutor.worker")


def run_job(payload: WorkerPayload) -> None:
    """Process entry point (forked by LocalExecutor's fork server). Returns normally whatever the job's outcome; the outcome is in the database."""
    prepare_process(payload)
    logging.basicConfig(filename=payload.log_path, level=logging.INFO,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)  # library warnings go to the job's log, not to the scheduler's terminal
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    asyncio.run(_run(payload))


async def _run(payload: WorkerPayload) -> None:
    from storage import queue as q
    from storage.db import Database
    from storage.files import ArtefactStore
    from trainer.pipeline import run_training
    from trainer.progress import Progress

    job_id, lease, spec = payload.job_id, payload.lease, payload.spec
    db = Database(payload.database_url, pooled=False)
    store = ArtefactStore(payload.data_dir)
    latest: dict = {"progress": Progress("loading", message="starting the worker").to_dict(), "sent": None}

    def progress(p: Progress) -> None:  # called from the training thread; the heartbeat sends it
        latest["progress"] = p.to_dict()

    async def leave(why: str) -> None:
        log.warning("job %s: %s; stopping", job_id, why)
        store.remove_partial(payload.model_rel)
        os._exit(0)  # the training thread cannot be interrupted; the process ends here

    stopping = asyncio.Event()  # set when training has ended: the heartbeat finishes its write and returns

    async def pause() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), payload.heartbeat_seconds)

    async def heartbeat() -> None:
        while not stopping.is_set():
            p = latest["progress"]
            try:
                async with db.transaction() as s:
                    ours, cancel = await q.heartbeat(s, job_id, lease, None if p is latest["sent"] else p)
            except Exception:  # the database is briefly unreachable: keep training, try again next beat
                log.exception("job %s: heartbeat not written", job_id)
                await pause()
                continue
            latest["sent"] = p
            if not ours:
                await leave("the job is no longer this worker's (cancelled or reassigned)")
            if cancel:  # normally the scheduler ends us first; this covers a worker whose scheduler is gone
                async with db.transaction() as s:
                    await q.cancel(s, job_id, lease, by="request")
                await leave("cancel requested")
            if time.time() > payload.deadline_unix:
                from .messages import TIMED_OUT

                async with db.transaction() as s:
                    await q.fail(s, job_id, lease, TIMED_OUT.format(minutes=payload.time_limit_minutes))
                await leave("time limit reached")
            await pause()

    async def stop_heartbeat() -> None:
        """Let the heartbeat end its write, not cancel it inside one: cancelled mid-transaction, its SQLite
        connection once kept the write lock, and the outcome written next failed for minutes (the finished
        job was then trained again)."""
        stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(beat), 30)
        except TimeoutError:  # a write that hangs (the database unreachable): the outcome's retries take over
            beat.cancel()
        except Exception:
            log.exception("job %s: the heartbeat had stopped with an error", job_id)

    beat = asyncio.create_task(heartbeat())
    log.info("job %s: training %s", job_id, spec.to_json())
    try:
        result = await asyncio.to_thread(run_training, spec, progress, payload.registry, payload.hidden)
    except Exception as exc:
        error, for_the_log = failure_message(exc, job_id)
        if for_the_log:
            log.error("job %s: %s", job_id, for_the_log)
        await stop_heartbeat()
        await record_failure(db, job_id, lease, error)
    else:
        await stop_heartbeat()
        await record_success(db, store, job_id, lease, payload.model_rel, result.metrics, result.hidden)
    finally:
        beat.cancel()  # done by now, unless recording the outcome raised
        store.remove_partial(payload.model_rel)
        await db.close()
        logging.shutdown()
        sys.stdout.flush()

