"""The class job queue's scheduler: a dispatcher and a reaper, run by APScheduler in the event loop.

The jobs table is the source of truth; APScheduler only calls ``dispatch`` and ``reap`` on an
interval (it keeps no training jobs of its own). Each claimed job runs in its own spawned OS
process (``trainer.worker.run_job``) that writes its heartbeat, progress and result to the
database itself; this side starts processes, stops them on cancel or time-out, and notices when
they die.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import multiprocessing
import os
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage import queue as q
from storage.db import Database
from storage.files import ArtefactStore
from storage.models import Job, Model

log = logging.getLogger("tinytutor.scheduler")

_NEVER = datetime.min.replace(tzinfo=UTC)

CRASHED = ("The training process stopped unexpectedly {times} (most often it ran out of memory). "
           "Try fewer rows, a smaller max_length or batch_size, or ask your instructor.")
TIMED_OUT = ("The job ran longer than this class's limit of {minutes:g} minutes and was stopped. Try fewer rows "
             "or epochs, or fewer layers.")


class _SkippedRun(logging.Filter):
    """APScheduler warns each time a periodic task is still running when its next turn comes (slow
    delivery, a long dispatch). That is the intended behaviour of max_instances=1, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUN = _SkippedRun()


def quiet_skipped_runs() -> None:
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUN)


def fair_order(state: q.QueueState) -> list[q.Candidate]:
    """The order in which queued jobs would start.

    Higher priority first (instructors' jobs). Among equal priority, round-robin between students:
    the student whose last job started longest ago (or never) goes next, then the next student, so
    one student's ten jobs cannot hold back a classmate's one. A student at their class's running
    limit waits behind everyone else. Within one student, oldest first.
    """
    per_student: dict[tuple[str, str], deque[q.Candidate]] = defaultdict(deque)
    for c in sorted(state.candidates, key=lambda c: (-c.priority, c.created_at, c.id)):
        per_student[c.student].append(c)
    heap = []
    for student, jobs in per_student.items():
        blocked = state.running.get(student, 0) >= state.max_running.get(student[0], 1)
        heap.append((-jobs[0].priority, blocked, state.last_started.get(student, _NEVER), 0,
                     jobs[0].created_at, jobs[0].id, student))
    heapq.heapify(heap)
    order, turn = [], 0
    while heap:
        _, blocked, _, _, _, _, student = heapq.heappop(heap)
        jobs = per_student[student]
        order.append(jobs.popleft())
        if jobs:
            turn += 1  # this student just had a turn: behind everyone who has not
            heapq.heappush(heap, (-jobs[0].priority, blocked, datetime.max.replace(tzinfo=UTC), turn,
                                  jobs[0].created_at, jobs[0].id, student))
    return order


def next_job(state: q.QueueState) -> list[q.Candidate]:
    """The jobs that may start now, best first (students under their running limit)."""
    return [c for c in fair_order(state)
            if state.running.get(c.student, 0) < state.max_running.get(c.guild_id, 1)]


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
class _Running:
    job_id: int
    lease: str
    guild_id: str
    process: multiprocessing.process.BaseProcess
    deadline: float  # time.monotonic()
    model_rel: str
    stopping: str | None = None  # "cancel" | "timeout" | "shutdown" once we asked it to end


class Scheduler:
    def __init__(self, db: Database, settings, *, target: Callable[[dict], None] | None = None,
                 slots: int | None = None, host: str | None = None):
        from .worker import run_job

        self.db, self.settings = db, settings
        self.queue_cfg = settings.queue
        self.store = ArtefactStore(settings.storage.data_dir)
        self.target = target or run_job
        self.slots = slots if slots is not None else count_slots(self.queue_cfg.cpu_slots,
                                                                 self.queue_cfg.gpu_slots_per_device)
        self.host = host or socket.gethostname()
        self._ctx = multiprocessing.get_context("spawn")
        self._running: dict[int, _Running] = {}
        # Workers of this host that a previous scheduler started and that still run (it was killed, they
        # were not): they finish their jobs themselves and hold their slots until they exit.
        self._orphans: dict[int, int] = {}  # job id -> pid
        self._aps = None
        self._lock = asyncio.Lock()  # dispatch and reap never interleave
        self._stopped = False  # set by stop(): a dispatch already waiting for the lock must not start jobs

    @property
    def running(self) -> dict[int, _Running]:
        return self._running

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous run, then dispatch and reap on APScheduler's interval triggers."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._stopped = False
        await self.recover()
        quiet_skipped_runs()
        self._aps = AsyncIOScheduler(timezone=UTC)
        opts = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self._aps.add_job(self.dispatch, "interval", seconds=self.queue_cfg.dispatch_seconds, id="dispatch",
                          next_run_time=datetime.now(UTC), **opts)
        self._aps.add_job(self.reap, "interval", seconds=self.queue_cfg.reap_seconds, id="reap", **opts)
        self._aps.start()
        log.info("scheduler started on %s with %d slot(s)", self.host, self.slots)

    async def stop(self, requeue: bool = True) -> None:
        """Stop dispatching; end our workers and put their jobs back in the queue (not counted as attempts)."""
        self._stopped = True
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        async with self._lock:
            for r in list(self._running.values()):
                r.stopping = "shutdown"
                await self._end_process(r)
                if requeue:
                    async with self.db.transaction() as s:
                        await q.requeue_or_fail(s, r.job_id, r.lease, "", count_attempt=False)
                self._forget(r)

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
                if job.worker_pid is None or not _pid_alive(job.worker_pid):
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

    def busy_slots(self) -> int:
        """Slots in use on this host: our workers, and live workers of a previous scheduler."""
        for job_id, pid in list(self._orphans.items()):
            if not _pid_alive(pid):
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

    def payload(self, job: Job, dataset_path: str, validation_path: str | None, teacher_path: str | None = None) -> dict:
        """What a worker needs to run one job: plain JSON-able data (a worker could be on another machine).
        ``teacher_path``: the stored model a distillation job's ``teacher_model_id`` names."""
        model_rel = self.store.model_rel(job.id, job.attempts)
        params = {k: v for k, v in job.params.items() if k != "teacher_model_id"}
        if teacher_path is not None:
            params["teacher"] = str(self.store.path(teacher_path))
        spec = self.settings.train_spec(
            str(self.store.path(dataset_path)), out_dir=str(self.store.path(model_rel)),
            validation_path=str(self.store.path(validation_path)) if validation_path else None,
            **params)
        spec.validate()
        return {
            "job_id": job.id, "lease": job.lease, "database_url": self.db.url, "data_dir": str(self.store.root),
            "spec": spec.to_dict(), "registry": dict(self.settings.base_models), "model_rel": model_rel,
            "heartbeat_seconds": self.queue_cfg.heartbeat_seconds,
            "deadline_unix": time.time() + self.queue_cfg.time_limit_minutes * 60,
            "time_limit_minutes": self.queue_cfg.time_limit_minutes,
            "log_path": str(self.store.log_path(job.id)), "allow_downloads": self.settings.hub.allow_downloads,
            "nice": self.queue_cfg.worker_nice,
        }

    async def _spawn(self, job: Job) -> bool:
        """Start a worker process for a claimed job; False when the job could not start (and was failed)."""
        from storage.models import Dataset, Model

        async with self.db.transaction() as s:
            ds = await s.get(Dataset, job.dataset_id)
            val = await s.get(Dataset, job.validation_dataset_id) if job.validation_dataset_id else None
            teacher_id = job.params.get("teacher_model_id")
            teacher = await s.get(Model, teacher_id) if teacher_id is not None else None
        if teacher_id is not None and (teacher is None or teacher.guild_id != job.guild_id):
            async with self.db.transaction() as s:
                await q.fail(s, job.id, job.lease, f"The teacher model {teacher_id} was deleted before this job "
                                                   "started; submit again with another teacher, or none.")
            return False
        try:
            payload = self.payload(job, ds.path, val.path if val else None, teacher.path if teacher else None)
        except (ValueError, TypeError) as exc:  # parameters stored by an older version that no longer validate
            async with self.db.transaction() as s:
                await q.fail(s, job.id, job.lease, f"The job's settings cannot be used: {exc}")
            return False
        except OSError as exc:  # the log folder cannot be made: a read-only or full data directory
            await self._failed_start(job, exc)
            return False
        try:
            proc = self._ctx.Process(target=self.target, args=(payload,), name=f"tinytutor-job-{job.id}", daemon=False)
            proc.start()
        except OSError as exc:  # no memory or process slots for another process
            await self._failed_start(job, exc)
            return False
        self._running[job.id] = _Running(job.id, job.lease, job.guild_id, proc,
                                         time.monotonic() + self.queue_cfg.time_limit_minutes * 60,
                                         payload["model_rel"])
        async with self.db.transaction() as s:
            await q.set_worker_pid(s, job.id, job.lease, proc.pid)
        log.info("job %s started (attempt %d) in process %s", job.id, job.attempts, proc.pid)
        return True

    async def _failed_start(self, job: Job, exc: OSError) -> None:
        """A worker that cannot start fails its job now, with the real reason (not a heartbeat timeout
        later, counted as an attempt and blamed on memory)."""
        log.error("job %s: the worker could not start: %s", job.id, exc)
        async with self.db.transaction() as s:
            await q.fail(s, job.id, job.lease, f"The training process could not start on {self.host} "
                                               f"({exc.__class__.__name__}: {exc.strerror or exc}); the server's "
                                               "data directory or resources need your instructor. Submit again later.")

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
            alive = r.process.is_alive()
            if job is None or job.lease != r.lease:  # the worker (or someone) finished or took the job away
                if alive:
                    await self._end_process(r)
                self._finished(r, job.status if job else "finished")
                continue
            if job.cancel_requested:
                r.stopping = "cancel"
                await self._end_process(r)
                self.store.remove_model(r.model_rel)
                async with self.db.transaction() as s:
                    await q.cancel(s, r.job_id, r.lease, by="request")
                self._finished(r, "cancelled")
            elif now > r.deadline and alive:
                r.stopping = "timeout"
                await self._end_process(r)
                self.store.remove_model(r.model_rel)
                async with self.db.transaction() as s:
                    await q.fail(s, r.job_id, r.lease, TIMED_OUT.format(minutes=self.queue_cfg.time_limit_minutes))
                self._finished(r, "failed (time limit)")
            elif not alive:  # exited without recording an outcome: killed, out of memory, crashed
                log.error("job %s: worker process %s died (exit code %s); see %s", r.job_id, r.process.pid,
                          r.process.exitcode, self.store.root / "logs" / f"job-{r.job_id}.log")
                async with self.db.transaction() as s:
                    after = await self._requeue(s, job)
                self._finished(r, after.status if after else "gone")

    async def _reap_silent(self) -> None:
        silent = timedelta(seconds=self.queue_cfg.heartbeat_timeout_seconds)
        async with self.db.transaction() as s:
            for job in await q.stale_jobs(s, silent):
                r = self._running.get(job.id)
                if r is not None and r.lease == job.lease:
                    log.error("job %s: worker %s stopped answering; ending it", job.id, r.process.pid)
                    await self._end_process(r)
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

    async def _end_process(self, r: _Running) -> None:
        """terminate(), then kill() after the grace period; never blocks the event loop."""
        p = r.process
        if p.is_alive():
            p.terminate()
            await asyncio.to_thread(p.join, self.queue_cfg.kill_grace_seconds)
        if p.is_alive():
            p.kill()
            await asyncio.to_thread(p.join, 5)
        self.store.remove_partial(r.model_rel)

    def _finished(self, r: _Running, status: str) -> None:
        self._forget(r)
        self.store.remove_partial(r.model_rel)
        log.info("job %s ended: %s", r.job_id, status)

    def _forget(self, r: _Running) -> None:
        self._running.pop(r.job_id, None)
        if r.process.exitcode is not None:
            r.process.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
