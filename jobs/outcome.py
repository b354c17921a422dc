"""A job's outcome, one path for both executors: how a worker process is prepared, what a student reads
when training fails, and how a finished job is recorded. The local worker (``jobs.worker``) and the
Ray task with its host-side watcher (``jobs.ray_executor``) both go through here, so they cannot drift.
"""

from __future__ import annotations

import logging
import os
import traceback

from .messages import INTERNAL
from .payload import WorkerPayload

log = logging.getLogger("tinytutor.outcome")


def prepare_process(payload: WorkerPayload) -> None:
    """What a training process sets before it imports the ML: a lower CPU priority (training is batch work
    beside interactive predictions: it still gets every idle cycle), offline unless ``allow_downloads``,
    no tokenizer threads of its own."""
    if payload.nice:
        os.nice(payload.nice)
    if not payload.allow_downloads:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def failure_message(exc: BaseException, job_id: int) -> tuple[str, str | None]:
    """What the student reads when training raised ``exc``, and what only the log gets (the whole message
    with its server paths, or a bug's traceback; None when there is nothing more)."""
    from trainer.errors import DataError, TrainerError

    if isinstance(exc, DataError):
        return "The file cannot be trained on: " + "; ".join(map(str, exc.problems)), None
    if isinstance(exc, TrainerError):
        return exc.for_students(), str(exc)
    return INTERNAL.format(job_id=job_id), "".join(traceback.format_exception(exc))


async def record_failure(db, job_id: int, lease: str, error: str) -> None:
    from storage import queue as q

    log.info("job %s failed: %s", job_id, error)
    await db.write_with_retries(lambda s: q.fail(s, job_id, lease, error), f"job {job_id}: recording its failure")


async def record_success(db, store, job_id: int, lease: str, model_rel: str, metrics: dict, hidden: dict | None):
    """A finished job whose model is in the artefact store at ``model_rel``: its plots and test examples
    copied for the report (so deleting the model later leaves the report whole), then model, report, score
    and outbox in one transaction, written again if the database fails it. A job cancelled or reassigned
    meanwhile keeps nothing (its files are removed). Returns the model row, or None."""
    from storage import queue as q
    from trainer.artefacts import REPORT_FILES

    model_dir = store.path(model_rel)
    kept = store.copy_report_files(job_id, [model_dir / f for f in REPORT_FILES if (model_dir / f).is_file()])
    plots = kept[:2]  # the confusion matrix and the training curve (always written): the report row names them
    model = await db.write_with_retries(  # a database blip must not throw a finished training away
        lambda s: q.succeed(s, job_id, lease, model_rel, metrics, *plots, hidden=hidden),
        f"job {job_id}: recording its model")
    if model is None:
        log.warning("job %s finished after it was cancelled or reassigned; discarding %s", job_id, model_rel)
        store.remove_tree(model_rel)
    else:
        log.info("job %s succeeded: model %s v%s, macro-F1 %.3f", job_id, model.name, model.version,
                 metrics["macro_f1"])
    return model
