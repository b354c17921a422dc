"""The class job queue's scheduler: a dispatcher and a reaper on the process's periodic tasks.

The jobs table is the source of truth; the periodic tasks only call ``dispatch`` and ``reap`` on an
interval. Each claimed job is handed to an executor (``jobs.executor``: a local process, or a Ray
task), whose handle this side stops on cancel or time-out, and whose end without an outcome it
notices (the job is then requeued, or failed after ``max_attempts``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from sqlalchemy import select

from storage import queue as q
from storage.db import Database
from storage.files import ArtefactStore
from storage.models import CLASS, INSTRUCTOR, Assignment, Dataset, Job, Member, Model
from trainer.errors import SpecError
from trainer.hidden import HiddenTest

from . import make_executor
from .executor import Executor, Handle, pid_alive
from .fairness import next_job
from .messages import CRASHED, START_FAILED, TIMED_OUT
from .payload import WorkerPayload
from .periodic import Periodic

TRAINING_SHARE_OF_LIMIT = 0.8  # of a job's time limit, for the training epochs

log = logging.getLogger("tinytutor.scheduler")


def count_slots(cpu_slots: int, gpu_slots_per_device: int) -> int:
    """One job per GPU (or a configured number per GPU), else the configured number on CPU."""
    gpus = 0
    # Without an NVIDIA driver there is no GPU to count: do not import torch (seconds, hundreds of MB)
    # for it, so a command that only queues a job stays light.
    if os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0"):
        try:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # no usable torch build: CPU
            gpus = 0
    return gpus * gpu_slots_per_device if gpus else cpu_slots


@dataclass
class Running:
    """A job this scheduler started and still watches."""

    job_id: int
    lease: str
    guild_id: str
    handle: Handle
    deadline: float  # time.monotonic()
    model_rel: str
    stopping: str | None = None  # "cancel" | "timeout" | "shutdown" once we asked it to end


class Scheduler:
    def __init__(self, db: Database, settings, *, executor: Executor | None = None, slots: int | None = None,
                 host: str | None = None):
        self.db, self.settings = db, settings
        self.queue_cfg = settings.queue
        self.store = ArtefactStore(settings.storage.data_dir)
        self.executor = executor or make_executor(settings)
        self._slots_given = slots is not None
        self.slots = slots if slots is not None else count_slots(self.queue_cfg.cpu_slots,
                                                                 self.queue_cfg.gpu_slots_per_device)
        self.host = host or socket.gethostname()
        self._running: dict[int, Running] = {}
        # Workers of this host that a previous scheduler started and that still run (it was killed, they
        # were not): they finish their jobs themselves and hold their slots until they exit.
        self._orphans: dict[int, int] = {}  # job id -> pid
        self._periodic: Periodic | None = None
        self._own_periodic = False
        self._lock = asyncio.Lock()  # dispatch and reap never interleave
        self._stopped = False  # set by stop(): a dispatch already waiting for the lock must not start jobs

    @property
    def running(self) -> Mapping[int, Running]:
        """The jobs this scheduler's workers run, by id (a read-only view)."""
        return MappingProxyType(self._running)

    @property
    def started(self) -> bool:
        return self._periodic is not None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, periodic: Periodic | None = None) -> None:
        """Recover from a previous run, then dispatch and reap on the process's periodic tasks (its own
        when none is given)."""
        self._stopped = False
        capacity = getattr(self.executor, "capacity", None)
        if capacity is not None and not self._slots_given:  # a cluster says how many jobs it runs at once
            self.slots = await asyncio.to_thread(capacity, self.slots)
        await self.recover()
        self._own_periodic = periodic is None
        self._periodic = periodic or Periodic()
        self._periodic.every(self.queue_cfg.dispatch_seconds, self.dispatch, "dispatch")
        self._periodic.every(self.queue_cfg.reap_seconds, self.reap, "reap", now=False)
        log.info("scheduler started on %s with %d slot(s), %s executor", self.host, self.slots, self.executor.name)

    async def stop(self, requeue: bool = True) -> None:
        """Stop dispatching; end our workers and put their jobs back in the queue (not counted as attempts)."""
        periodic = self._periodic if self._own_periodic else None
        self.halt()
        if periodic is not None:
            await periodic.stop()
        async with self._lock:
            for r in list(self._running.values()):
                r.stopping = "shutdown"
                await self._end(r)
                if requeue:
                    async with self.db.transaction() as s:
                        await q.requeue_or_fail(s, r.job_id, r.lease, "", count_attempt=False)
                self._forget(r)
        await self.executor.close()

    def halt(self) -> None:
        """Stop dispatching and reaping at once, leaving workers and the database as they are (what a
        scheduler that is killed leaves behind)."""
        self._stopped = True
        if self._periodic is not None:
            self._periodic.cancel("dispatch")
            self._periodic.cancel("reap")
            self._periodic = None

    async def crash(self) -> None:
        """What a machine that loses power leaves behind: no more dispatching or reaping, every worker
        killed at once, nothing recorded (the jobs stay ``running`` until a restart's ``recover``)."""
        self.halt()
        for r in list(self._running.values()):
            await r.handle.stop(0)
        self._running.clear()

    async def recover(self) -> None:
        """After a restart: a job left running by a process of this host that no longer exists is
        requeued (or failed) now; one whose worker still runs keeps its slot until it exits; other
        hosts' jobs wait for the heartbeat timeout. Then model directories no job or model owns (a
        worker killed while saving) are removed."""
        async with self.db.transaction() as s:
            running = await q.running_jobs(s)
            for job in running:
                if job.id in self._running or job.worker_host != self.host:
                    continue
                if job.worker_pid is None or not pid_alive(job.worker_pid):
                    log.warning("job %s was running when the service stopped; its worker is gone", job.id)
                    await self._requeue(s, job)
                else:
                    log.warning("job %s: its worker (pid %s) outlived the previous scheduler; it keeps its slot",
                                job.id, job.worker_pid)
                    self._orphans[job.id] = job.worker_pid
            kept = set((await s.execute(select(Model.path))).scalars())
            kept |= {self.store.model_rel(j.id, j.attempts) for j in await q.running_jobs(s)}
        removed = await asyncio.to_thread(self.store.sweep_models, kept)
        if removed:
            log.warning("removed %d model director%s no job or model owns: %s", len(removed),
                        "y" if len(removed) == 1 else "ies", ", ".join(removed[:10]))

    async def idle(self) -> bool:
        """Nothing left to do: no worker of ours, and no job running elsewhere or waiting to start (a paused
        class's queued jobs wait for it to be resumed, so they do not count)."""
        if self.busy_slots():
            return False
        async with self.db.transaction() as s:
            return await q.pending_jobs(s) == 0

    def busy_slots(self) -> int:
        """Slots in use on this host: our workers, and live workers of a previous scheduler."""
        for job_id, pid in list(self._orphans.items()):
            if not pid_alive(pid):
                del self._orphans[job_id]
        return len(self._running) + len(self._orphans)

    # -- dispatcher --------------------------------------------------------------------------------
    async def dispatch(self) -> int:
        """Start queued jobs while slots are free. Returns how many started."""
        started = 0
        async with self._lock:
            while self.busy_slots() < self.slots and not self._stopped:
                job = await self.claim_next()
                if job is None:
                    break
                started += await self._spawn(job)
        return started

    async def claim_next(self) -> Job | None:
        """Claim the fairest queued job atomically; None when nothing may start."""
        async with self.db.transaction() as s:  # one transaction: on SQLite it holds the write lock throughout
            state = await q.queue_state(s)
            for cand in next_job(state)[:5]:  # a few tries: another scheduler may take the first
                job = await q.claim(s, cand.id, self.host, skip_locked=self.db.is_postgres)
                if job is not None:
                    return job
        return None

    def payload(self, job: Job, dataset_path: str, validation_path: str | None, teacher_path: str | None = None,
                hidden: HiddenTest | None = None) -> WorkerPayload:
        """What a worker needs to run one job. Paths are this host's; an executor whose workers run
        elsewhere ships the files themselves (``jobs.ray_executor``). ``teacher_path``: the stored model a
        distillation job's ``teacher_model_id`` names. ``hidden``: an assignment's hidden test set, kept
        apart from the spec so it is never trained on nor recorded in the student's report."""
        model_rel = self.store.model_rel(job.id, job.attempts)
        params = {k: v for k, v in job.params.items() if k != "teacher_model_id"}
        if teacher_path is not None:
            params["teacher"] = str(self.store.path(teacher_path))
        spec = self.settings.train_spec(
            str(self.store.path(dataset_path)), out_dir=str(self.store.path(model_rel)),
            validation_path=str(self.store.path(validation_path)) if validation_path else None,
            # training stops (keeping its best epoch) with a fifth of the limit left to evaluate and export
            time_budget_seconds=self.queue_cfg.time_limit_minutes * 60 * TRAINING_SHARE_OF_LIMIT,
            **params)
        return WorkerPayload(
            job_id=job.id, lease=job.lease, spec=spec, registry=dict(self.settings.base_models),
            model_rel=model_rel, heartbeat_seconds=self.queue_cfg.heartbeat_seconds,
            deadline_unix=time.time() + self.queue_cfg.time_limit_minutes * 60,
            time_limit_minutes=self.queue_cfg.time_limit_minutes,
            log_path=str(self.store.root / "logs" / f"job-{job.id}.log"),
            allow_downloads=self.settings.hub.allow_downloads, nice=self.queue_cfg.worker_nice,
            database_url=self.db.url, data_dir=str(self.store.root), hidden=hidden)

    async def _spawn(self, job: Job) -> bool:
        """Start a worker for a claimed job; False when the job could not start (and was failed)."""
        async with self.db.transaction() as s:
            ds = await s.get(Dataset, job.dataset_id)
            val = await s.get(Dataset, job.validation_dataset_id) if job.validation_dataset_id else None
            teacher_id = job.params.get("teacher_model_id")
            teacher = await s.get(Model, teacher_id) if teacher_id is not None else None
            owner_role = (await s.execute(select(Member.role).where(
                Member.guild_id == job.guild_id, Member.user_id == job.owner_id))).scalar_one_or_none()
            hidden = await self._hidden_test(s, job)
        if teacher_id is not None and (teacher is None or teacher.guild_id != job.guild_id):
            async with self.db.transaction() as s:
                await q.fail(s, job.id, job.lease, f"The teacher model {teacher_id} was deleted before this job "
                                                   "started; submit again with another teacher, or none.")
            return False
        if (teacher is not None and teacher.owner_id != job.owner_id and teacher.visibility != CLASS
                and owner_role != INSTRUCTOR):
            # its owner stopped sharing it after this job was queued: a classmate's model is used only while shared
            async with self.db.transaction() as s:
                await q.fail(s, job.id, job.lease, f"The teacher model {teacher.name} v{teacher.version} is no "
                                                   "longer shared with the class; submit again with another "
                                                   "teacher, or none.")
            return False
        try:
            payload = self.payload(job, ds.path, val.path if val else None, teacher.path if teacher else None,
                                   hidden)
        except SpecError as exc:  # parameters stored by an older version that no longer validate
            async with self.db.transaction() as s:
                await q.fail(s, job.id, job.lease, f"The job's settings cannot be used: {exc}")
            return False
        try:
            handle = await self.executor.launch(payload)
        except OSError as exc:  # a read-only data directory, no memory for a process, a cluster refusing it
            await self._failed_start(job, exc)
            return False
        self._running[job.id] = Running(job.id, job.lease, job.guild_id, handle,
                                        time.monotonic() + self.queue_cfg.time_limit_minutes * 60,
                                        payload.model_rel)
        if handle.pid is not None:
            async with self.db.transaction() as s:
                await q.set_worker_pid(s, job.id, job.lease, handle.pid)
        log.info("job %s started (attempt %d): %s", job.id, job.attempts,
                 f"process {handle.pid}" if handle.pid else f"{self.executor.name} task")
        return True

    async def _hidden_test(self, s, job: Job) -> HiddenTest | None:
        """The hidden test set of the assignment a job was submitted to, for the worker."""
        if job.assignment_id is None:
            return None
        assignment = await s.get(Assignment, job.assignment_id)
        test = await s.get(Dataset, assignment.test_dataset_id)
        return HiddenTest(str(self.store.path(test.path)), test.lint["text_column"], test.lint["label_column"],
                          list(assignment.labels),
                          tuple(assignment.public_rows) if assignment.public_rows is not None else None)

    async def _failed_start(self, job: Job, exc: OSError) -> None:
        """A worker that cannot start fails its job now, with the real reason (not a heartbeat timeout
        later, counted as an attempt and blamed on memory)."""
        log.error("job %s: the worker could not start: %s", job.id, exc)
        async with self.db.transaction() as s:
            await q.fail(s, job.id, job.lease, START_FAILED.format(
                host=self.host, why=f"{exc.__class__.__name__}: {exc.strerror or exc}"))

    # -- reaper ------------------------------------------------------------------------------------
    async def reap(self) -> None:
        """End cancelled and timed-out workers, notice dead ones, and requeue jobs whose worker went silent."""
        async with self._lock:
            await self._reap_own()
            await self._reap_silent()

    async def _reap_own(self) -> None:
        if not self._running:
            return
        async with self.db.transaction() as s:
            jobs = {j.id: j for j in await q.running_jobs(s)}
        now = time.monotonic()
        for r in list(self._running.values()):
            job = jobs.get(r.job_id)
            alive = r.handle.alive()
            if job is None or job.lease != r.lease:  # the worker (or someone) finished or took the job away
                if alive:
                    await self._end(r)
                self._finished(r, job.status if job else "finished")
                continue
            if job.cancel_requested:
                r.stopping = "cancel"
                await self._end(r)
                self.store.remove_model(r.model_rel)
                async with self.db.transaction() as s:
                    await q.cancel(s, r.job_id, r.lease, by="request")
                self._finished(r, "cancelled")
            elif now > r.deadline and alive:
                r.stopping = "timeout"
                await self._end(r)
                self.store.remove_model(r.model_rel)
                async with self.db.transaction() as s:
                    await q.fail(s, r.job_id, r.lease, TIMED_OUT.format(minutes=self.queue_cfg.time_limit_minutes))
                self._finished(r, "failed (time limit)")
            elif not alive:  # exited without recording an outcome: killed, out of memory, crashed
                log.error("job %s: its worker died (%s); see %s", r.job_id, r.handle.describe_end(),
                          self.store.root / "logs" / f"job-{r.job_id}.log")
                async with self.db.transaction() as s:
                    after = await self._requeue(s, job)
                self._finished(r, after.status if after else "gone")

    async def _reap_silent(self) -> None:
        silent = timedelta(seconds=self.queue_cfg.heartbeat_timeout_seconds)
        async with self.db.transaction() as s:
            for job in await q.stale_jobs(s, silent):
                r = self._running.get(job.id)
                if r is not None and r.lease == job.lease:
                    log.error("job %s: its worker stopped answering; ending it", job.id)
                    await self._end(r)
                    self._forget(r)
                else:
                    log.error("job %s: no heartbeat for %s from %s pid %s", job.id, silent, job.worker_host,
                              job.worker_pid)
                after = await self._requeue(s, job)
                log.info("job %s is now %s", job.id, after.status if after else "gone")

    async def _requeue(self, session, job: Job) -> Job | None:
        self.store.remove_model(self.store.model_rel(job.id, job.attempts))
        times = "once" if job.attempts == 1 else f"{job.attempts} times"
        return await q.requeue_or_fail(session, job.id, job.lease, CRASHED.format(times=times))

    async def _end(self, r: Running) -> None:
        """Stop the worker (never blocking the event loop) and remove its half-written files."""
        await r.handle.stop(self.queue_cfg.kill_grace_seconds)
        self.store.remove_partial(r.model_rel)

    def _finished(self, r: Running, status: str) -> None:
        self._forget(r)
        self.store.remove_partial(r.model_rel)
        log.info("job %s ended: %s", r.job_id, status)

    def _forget(self, r: Running) -> None:
        self._running.pop(r.job_id, None)
        r.handle.close()
