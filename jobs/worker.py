"""One training job in its own OS process: ``run_job(payload)``.

The payload is plain data (see ``Scheduler.payload``). The worker trains in a thread while its
event loop writes a heartbeat with the latest progress every few seconds; it records the outcome
itself, conditional on the lease its claim wrote, so a job that was cancelled or handed to another
worker meanwhile is never overwritten. Tracebacks go to the job's log file, never to the student.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from .messages import INTERNAL

log = logging.getLogger("tinytutor.worker")


def run_job(payload: dict) -> None:
    """Process entry point (spawned). Returns normally whatever the job's outcome; the outcome is in the database."""
    if payload.get("nice"):
        # Training is batch work; predictions served beside it are interactive. At a lower priority the
        # worker still gets every idle cycle, but a prediction no longer waits for its time slice.
        os.nice(payload["nice"])
    if not payload.get("allow_downloads"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(filename=payload["log_path"], level=logging.INFO,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)  # library warnings go to the job's log, not to the scheduler's terminal
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    asyncio.run(_run(payload))


async def _run(payload: dict) -> None:
    from core.spec import TrainSpec
    from storage import queue as q
    from storage.db import Database
    from storage.files import ArtefactStore
    from trainer.errors import DataError, TrainerError
    from trainer.hidden import HiddenTest
    from trainer.pipeline import CONFUSION_PNG, CURVE_PNG, run_training
    from trainer.progress import Progress

    job_id, lease = payload["job_id"], payload["lease"]
    db = Database(payload["database_url"], pooled=False)
    store = ArtefactStore(payload["data_dir"])
    spec = TrainSpec.from_dict(payload["spec"])
    hidden = HiddenTest.from_dict(payload["hidden"]) if payload.get("hidden") else None
    latest: dict = {"progress": Progress("loading", message="starting the worker").to_dict(), "sent": None}

    def progress(p: Progress) -> None:  # called from the training thread; the heartbeat sends it
        latest["progress"] = p.to_dict()

    async def leave(why: str) -> None:
        log.warning("job %s: %s; stopping", job_id, why)
        store.remove_partial(payload["model_rel"])
        os._exit(0)  # the training thread cannot be interrupted; the process ends here

    async def heartbeat() -> None:
        while True:
            p = latest["progress"]
            try:
                async with db.transaction() as s:
                    ours, cancel = await q.heartbeat(s, job_id, lease, None if p is latest["sent"] else p)
            except Exception:  # the database is briefly unreachable: keep training, try again next beat
                log.exception("job %s: heartbeat not written", job_id)
                await asyncio.sleep(payload["heartbeat_seconds"])
                continue
            latest["sent"] = p
            if not ours:
                await leave("the job is no longer this worker's (cancelled or reassigned)")
            if cancel:  # normally the scheduler ends us first; this covers a worker whose scheduler is gone
                async with db.transaction() as s:
                    await q.cancel(s, job_id, lease, by="request")
                await leave("cancel requested")
            if time.time() > payload["deadline_unix"]:
                from .messages import TIMED_OUT

                async with db.transaction() as s:
                    await q.fail(s, job_id, lease, TIMED_OUT.format(minutes=payload["time_limit_minutes"]))
                await leave("time limit reached")
            await asyncio.sleep(payload["heartbeat_seconds"])

    beat = asyncio.create_task(heartbeat())
    log.info("job %s: training %s", job_id, spec.to_json())
    try:
        result = await asyncio.to_thread(run_training, spec, progress, payload["registry"], hidden)
    except DataError as exc:
        await _record_failure(db, job_id, lease, "The file cannot be trained on: " + "; ".join(map(str, exc.problems)))
    except TrainerError as exc:
        log.info("job %s: %s", job_id, exc)  # the log keeps the server's paths; the student's message does not
        await _record_failure(db, job_id, lease, exc.for_students())
    except Exception:
        log.exception("job %s failed", job_id)
        await _record_failure(db, job_id, lease, INTERNAL.format(job_id=job_id))
    else:
        beat.cancel()
        rel = payload["model_rel"]
        # the report keeps its own copy of the plots, so deleting the model later leaves the report whole
        plots = store.copy_plots(job_id, [result.model_dir / CONFUSION_PNG, result.model_dir / CURVE_PNG])
        model = await db.write_with_retries(  # a database blip must not throw a finished training away
            lambda s: q.succeed(s, job_id, lease, rel, result.metrics, *plots, hidden=result.hidden),
            f"job {job_id}: recording its model")
        if model is None:
            log.warning("job %s finished after it was cancelled or reassigned; discarding %s", job_id, rel)
            store.remove_tree(rel)
        else:
            log.info("job %s succeeded: model %s v%s, macro-F1 %.3f", job_id, model.name, model.version,
                     result.metrics["macro_f1"])
    finally:
        beat.cancel()
        store.remove_partial(payload["model_rel"])
        await db.close()
        logging.shutdown()
        sys.stdout.flush()


async def _record_failure(db, job_id: int, lease: str, error: str) -> None:
    from storage import queue as q

    log.info("job %s failed: %s", job_id, error)
    await db.write_with_retries(lambda s: q.fail(s, job_id, lease, error), f"job {job_id}: recording its failure")
