"""The job queue's queries: claim, heartbeat, finish, requeue, and the outbox.

Every state change is conditional on the state it expects (and, for a running job, on the lease
its claim wrote), so two schedulers, a worker and a reaper can race and exactly one of them wins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Classroom,
    Experiment,
    Job,
    Member,
    Model,
    Outbox,
    Report,
    Score,
    utcnow,
)


@dataclass(frozen=True)
class Candidate:
    """A queued job as the dispatcher sees it."""

    id: int
    guild_id: str
    owner_id: str
    priority: int
    created_at: datetime

    @property
    def student(self) -> tuple[str, str]:
        return (self.guild_id, self.owner_id)


@dataclass(frozen=True)
class QueueState:
    """Everything the fairness rule needs, read in one go."""

    candidates: list[Candidate]  # queued jobs of classes that are not paused
    running: dict[tuple[str, str], int]  # running jobs per (guild, student)
    last_started: dict[tuple[str, str], datetime]  # when each student's latest job started
    max_running: dict[str, int]  # per class


async def insert_if_absent(session: AsyncSession, model, values: dict) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL): safe when two requests create the same row."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    await session.execute(insert(model).values(**values).on_conflict_do_nothing())


async def queue_state(session: AsyncSession) -> QueueState:
    rows = (await session.execute(
        select(Job.id, Job.guild_id, Job.owner_id, Job.priority, Job.created_at)
        .join(Classroom, Classroom.guild_id == Job.guild_id)
        .where(Job.status == QUEUED, Classroom.paused.is_(False)))).all()
    candidates = [Candidate(*r) for r in rows]
    running = {(g, o): n for g, o, n in (await session.execute(
        select(Job.guild_id, Job.owner_id, func.count()).where(Job.status == RUNNING)
        .group_by(Job.guild_id, Job.owner_id))).all()}
    last = {(g, o): t for g, o, t in (await session.execute(
        select(Job.guild_id, Job.owner_id, func.max(Job.started_at)).where(Job.started_at.is_not(None))
        .group_by(Job.guild_id, Job.owner_id))).all()}
    limits = dict((await session.execute(select(Classroom.guild_id, Classroom.max_running_per_student))).all())
    return QueueState(candidates, running, last, limits)  # max() keeps UTCDateTime: aware datetimes


async def claim(session: AsyncSession, job_id: int, host: str, *, skip_locked: bool) -> Job | None:
    """Mark one queued job running under a new lease, or return None when another got it first
    (or its class was paused, or its student reached the running limit meanwhile)."""
    if skip_locked:  # PostgreSQL: do not wait for a row another scheduler is claiming
        locked = (await session.execute(
            select(Job.id).where(Job.id == job_id, Job.status == QUEUED).with_for_update(skip_locked=True)
        )).scalar_one_or_none()
        if locked is None:
            return None
    job = await session.get(Job, job_id)
    if job is None:
        return None
    if skip_locked:  # one claim per student at a time, so the running count below sees the other's claim
        # (unlocked, two schedulers each counted 0 running and both started a job for a student at the limit)
        await session.execute(select(Member.id).where(Member.guild_id == job.guild_id, Member.user_id == job.owner_id)
                              .with_for_update())
    other = Job.__table__.alias("other")
    running_for_student = (select(func.count()).select_from(other)
                           .where(other.c.guild_id == job.guild_id, other.c.owner_id == job.owner_id,
                                  other.c.status == RUNNING).scalar_subquery())
    limit = select(Classroom.max_running_per_student).where(Classroom.guild_id == job.guild_id).scalar_subquery()
    paused = exists().where(Classroom.guild_id == job.guild_id, Classroom.paused.is_(True))
    now = utcnow()
    lease = str(uuid.uuid4())
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED, running_for_student < limit, ~paused)
        .values(status=RUNNING, lease=lease, attempts=Job.attempts + 1, started_at=now, heartbeat_at=now,
                worker_host=host, worker_pid=None, progress={"stage": "starting"}, finished_at=None)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    await session.refresh(job)
    return job


async def set_worker_pid(session: AsyncSession, job_id: int, lease: str, pid: int) -> None:
    await session.execute(update(Job).where(Job.id == job_id, Job.lease == lease).values(worker_pid=pid))


async def heartbeat(session: AsyncSession, job_id: int, lease: str, progress: dict | None) -> tuple[bool, bool]:
    """Record that the worker lives (and its progress). Returns (still ours, cancel requested)."""
    values = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    row = (await session.execute(
        update(Job).where(Job.id == job_id, Job.lease == lease, Job.status == RUNNING).values(**values)
        .returning(Job.cancel_requested))).first()
    if row is None:
        return False, False
    return True, bool(row[0])


async def _announce(session: AsyncSession, job: Job, kind: str, payload: dict) -> None:
    """The outbox row for a job that ended. A job of an experiment has none of its own: when the last of
    the experiment's jobs ends, one row announces them all (``_close_experiment``)."""
    if job.experiment_id is not None:
        await _close_experiment(session, job.experiment_id)
        return
    base = {"job_id": job.id, "owner_id": job.owner_id, "name": job.name, "status": job.status}
    session.add(Outbox(guild_id=job.guild_id, kind=kind, job_id=job.id, channel_id=job.channel_id,
                       payload=base | payload))


async def _close_experiment(session: AsyncSession, experiment_id: int) -> None:
    """Mark an experiment finished, and announce it once, if none of its jobs is queued or running.

    The experiment's row is locked before its jobs are counted (PostgreSQL; SQLite's BEGIN IMMEDIATE
    serialises writers already): two of its jobs ending at once each wait for the other's commit, so the
    second sees the first finished and exactly one of them closes it (unlocked, each saw the other still
    running and nobody announced)."""
    exp = (await session.execute(select(Experiment).where(Experiment.id == experiment_id)
                                 .with_for_update())).scalar_one_or_none()
    if exp is None or exp.finished_at is not None:
        return
    still_open = (await session.execute(select(func.count()).select_from(Job).where(
        Job.experiment_id == experiment_id, Job.status.in_((QUEUED, RUNNING))))).scalar_one()
    if still_open:
        return
    exp.finished_at = utcnow()
    session.add(Outbox(guild_id=exp.guild_id, kind="experiment_finished", job_id=None, channel_id=exp.channel_id,
                       payload={"experiment_id": exp.id, "owner_id": exp.owner_id, "name": exp.name,
                                "setting": exp.setting}))


async def _end(session: AsyncSession, job_id: int, expect_lease: str | None, status: str, **values) -> Job | None:
    """Move a job to a final (or queued) state if it is still where the caller thinks it is: running
    under ``expect_lease``, or queued when that is None. The lease is cleared either way."""
    cond = [Job.id == job_id]
    cond += [Job.lease == expect_lease, Job.status == RUNNING] if expect_lease else [Job.status == QUEUED]
    result = await session.execute(
        update(Job).where(*cond).values(status=status, lease=None, **values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    job = await session.get(Job, job_id)
    await session.refresh(job)
    return job


async def succeed(session: AsyncSession, job_id: int, lease: str, model_rel: str, metrics: dict,
                  confusion_rel: str, curve_rel: str, hidden: dict | None = None) -> Model | None:
    """Finish a job in one transaction: status, model row, report row, outbox row, and for a submission to
    an assignment its scores on both parts of the hidden set (``hidden``: trainer.hidden.score_hidden's aggregates).
    None if the lease is gone (the job was cancelled or reaped while it trained: the caller throws its
    files away)."""
    job = await _end(session, job_id, lease, SUCCEEDED, finished_at=utcnow(), cancel_requested=False, error=None,
                     progress={"stage": "done", "message": f"macro-F1 {metrics['macro_f1']:.3f}"})
    if job is None:
        return None
    # Versions of one student's same-named models are allocated one finish at a time: the member row is
    # locked first (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so two jobs finishing
    # at once get versions n and n+1, not the same one twice (a unique-constraint error that lost a model).
    member = (await session.execute(select(Member).where(
        Member.guild_id == job.guild_id, Member.user_id == job.owner_id).with_for_update())).scalar_one_or_none()
    version = (await session.execute(
        select(func.coalesce(func.max(Model.version), 0))
        .where(Model.guild_id == job.guild_id, Model.owner_id == job.owner_id, Model.name == job.name))).scalar_one() + 1
    summary = {k: metrics[k] for k in ("accuracy", "macro_f1", "baseline_macro_f1", "baseline_accuracy",
                                       "train_seconds", "ms_per_message", "size_bytes", "best_epoch", "method")}
    model = Model(guild_id=job.guild_id, owner_id=job.owner_id, job_id=job.id, name=job.name, version=version,
                  base_model=metrics["base_model"], layers_kept=metrics["layers_kept"],
                  layers_base=metrics["layers_base"], params=metrics["params"], params_base=metrics["params_base"],
                  labels=metrics["labels"], metrics=summary, path=model_rel)
    session.add(model)
    await session.flush()
    session.add(Report(job_id=job.id, model_id=model.id, metrics=metrics, report_text=metrics["report_text"],
                       confusion_png=confusion_rel, curve_png=curve_rel))
    if member is not None and member.default_model_id is None:
        member.default_model_id = model.id  # a student's first model is their default for "Classify message"
    if hidden is not None and job.assignment_id is not None:
        public, private = hidden["public"], hidden["private"]
        session.add(Score(assignment_id=job.assignment_id, job_id=job.id, owner_id=job.owner_id, model_name=job.name,
                          macro_f1=public["macro_f1"], accuracy=public["accuracy"],
                          per_class_f1=public["per_class_f1"], baseline_macro_f1=public["baseline_macro_f1"],
                          private_macro_f1=private["macro_f1"], private_accuracy=private["accuracy"],
                          private_per_class_f1=private["per_class_f1"],
                          private_baseline_macro_f1=private["baseline_macro_f1"],
                          probe_macro_f1=public.get("probe_macro_f1"),
                          private_probe_macro_f1=private.get("probe_macro_f1"),
                          params=metrics["params"], layers=len(metrics["layers_kept"]),
                          ms_per_message=metrics["ms_per_message"], submitted_at=job.created_at))
    await _announce(session, job, "job_succeeded", {"model_id": model.id, "version": version, **summary})
    return model


async def fail(session: AsyncSession, job_id: int, lease: str | None, error: str) -> Job | None:
    job = await _end(session, job_id, lease, FAILED, finished_at=utcnow(), error=error)
    if job is not None:
        await _announce(session, job, "job_failed", {"error": error})
    return job


async def cancel(session: AsyncSession, job_id: int, lease: str | None, by: str) -> Job | None:
    """Cancel a queued job (lease None) or a running one whose process is gone (its lease)."""
    job = await _end(session, job_id, lease, CANCELLED, finished_at=utcnow())
    if job is not None:
        await _announce(session, job, "job_cancelled", {"cancelled_by": by})
    return job


async def requeue_or_fail(session: AsyncSession, job_id: int, lease: str, reason: str,
                          count_attempt: bool = True) -> Job | None:
    """A worker is gone: put its job back in the queue, or fail it after ``max_attempts``."""
    job = await session.get(Job, job_id)
    if job is None or job.lease != lease or job.status != RUNNING:
        return None
    if count_attempt and job.attempts >= job.max_attempts:
        return await fail(session, job_id, lease, reason)
    attempts = job.attempts if count_attempt else job.attempts - 1
    return await _end(session, job_id, lease, QUEUED, worker_pid=None, heartbeat_at=None,
                      progress=None, started_at=None, attempts=attempts, error=reason if count_attempt else None)


async def pending_jobs(session: AsyncSession) -> int:
    """Jobs still to run or finish: running ones, and queued ones of classes that are not paused."""
    return (await session.execute(
        select(func.count()).select_from(Job).join(Classroom, Classroom.guild_id == Job.guild_id)
        .where((Job.status == RUNNING) | ((Job.status == QUEUED) & Classroom.paused.is_(False))))).scalar_one()


async def running_jobs(session: AsyncSession) -> list[Job]:
    return list((await session.execute(select(Job).where(Job.status == RUNNING))).scalars())


async def stale_jobs(session: AsyncSession, silent_for: timedelta) -> list[Job]:
    cutoff = utcnow() - silent_for
    return list((await session.execute(
        select(Job).where(Job.status == RUNNING, Job.heartbeat_at < cutoff))).scalars())


# -- outbox ------------------------------------------------------------------------------------------

async def due_outbox(session: AsyncSession, limit: int = 20, lease_seconds: float = 60) -> list[Outbox]:
    """Claim undelivered notifications that are due, so a second notifier does not send them too."""
    now = utcnow()
    q = (select(Outbox).where(Outbox.delivered_at.is_(None), Outbox.gave_up_at.is_(None), Outbox.next_attempt_at <= now,
                              (Outbox.claimed_until.is_(None)) | (Outbox.claimed_until < now))
         .order_by(Outbox.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = list((await session.execute(q)).scalars())
    for row in rows:
        row.claimed_until = now + timedelta(seconds=lease_seconds)
    return rows


async def mark_delivered(session: AsyncSession, outbox_id: int) -> None:
    await session.execute(update(Outbox).where(Outbox.id == outbox_id).values(delivered_at=utcnow(), claimed_until=None))


async def mark_retry(session: AsyncSession, outbox_id: int, error: str, backoff_seconds: float) -> None:
    await session.execute(update(Outbox).where(Outbox.id == outbox_id).values(
        attempts=Outbox.attempts + 1, last_error=error[:2000], claimed_until=None,
        next_attempt_at=utcnow() + timedelta(seconds=backoff_seconds)))


async def mark_part_sent(session: AsyncSession, outbox_id: int, parts: int) -> None:
    """Record that the first ``parts`` messages of a notice were sent (a retry sends only the rest)."""
    await session.execute(update(Outbox).where(Outbox.id == outbox_id).values(parts_sent=parts))


async def mark_gave_up(session: AsyncSession, outbox_id: int, error: str) -> None:
    await session.execute(update(Outbox).where(Outbox.id == outbox_id).values(
        gave_up_at=utcnow(), last_error=error[:2000], claimed_until=None))


async def undelivered(session: AsyncSession, job_ids: list[int]) -> dict[int, Outbox]:
    """Notices given up on, by job id."""
    if not job_ids:
        return {}
    rows = (await session.execute(select(Outbox).where(Outbox.job_id.in_(job_ids), Outbox.gave_up_at.is_not(None))))
    return {r.job_id: r for r in rows.scalars()}


# -- progress messages (the bot edits one channel message per job; the job row keeps its id) ----------

async def set_progress_message(session: AsyncSession, job_id: int, channel_id: str, message_id: str) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(channel_id=channel_id, message_id=message_id))


async def progress_message_rows(session: AsyncSession) -> list[tuple[int, str, str]]:
    """(job id, channel id, message id) of jobs whose progress message still needs edits."""
    rows = await session.execute(select(Job.id, Job.channel_id, Job.message_id)
                                 .where(Job.message_id.is_not(None)).order_by(Job.id))
    return [tuple(r) for r in rows.all()]


async def clear_progress_message(session: AsyncSession, job_id: int) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(message_id=None))
