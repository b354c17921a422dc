"""Where a claimed job runs: the executor seam.

The scheduler decides what runs (the jobs table is the source of truth) and hands each claimed job
to an executor, which returns a ``Handle``: something that is alive while the job runs, can be
stopped (cancel, time limit, shutdown) and, when it ends without recording an outcome, counts as a
worker that died (the reaper requeues its job). Two executors:

- ``LocalExecutor``: an OS process on this machine per job (``jobs.worker.run_job``), forked from a
  server that imported the trainer once; it writes its heartbeat, progress and outcome to the database
  itself.
- ``RayExecutor`` (``jobs.ray_executor``): a Ray task on a cluster; a coroutine on this host is its
  database side (heartbeat, progress, outcome), so Ray workers need neither the database nor this
  machine's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Callable
from typing import Protocol

from .payload import WorkerPayload


class Handle(Protocol):
    job_id: int
    pid: int | None  # an OS process on this host, if the job has one (recorded for restarts)

    def alive(self) -> bool: ...

    async def stop(self, grace_seconds: float) -> None:
        """End the job's worker (politely, then by force after ``grace_seconds``); never blocks the loop."""

    def describe_end(self) -> str:
        """How it ended, for the log (an exit code, an exception)."""

    def close(self) -> None: ...


class Executor(Protocol):
    name: str

    async def launch(self, payload: WorkerPayload) -> Handle:
        """Start a job's worker. Raises OSError when it cannot start (the job then fails with the reason)."""

    async def close(self) -> None: ...


class ProcessHandle:
    def __init__(self, job_id: int, process: multiprocessing.process.BaseProcess):
        self.job_id, self.process = job_id, process

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    async def stop(self, grace_seconds: float) -> None:
        """terminate(), then kill() after the grace period."""
        p = self.process
        if p.is_alive():
            p.terminate()
            await asyncio.to_thread(p.join, grace_seconds)
        if p.is_alive():
            p.kill()
            await asyncio.to_thread(p.join, 5)

    def describe_end(self) -> str:
        return f"process {self.process.pid} exit code {self.process.exitcode}"

    def close(self) -> None:
        if self.process.exitcode is not None:
            self.process.close()


# What a worker never needs and a student's file must never reach: the bot's token, the dashboard's signing
# secret (the default variable; [web].secret_env names another), the database URL with its password (the
# worker gets the URL it writes to in its payload) and Ray's token.
SECRET_ENV = ("DISCORD_TOKEN", "TINYTUTOR_WEB_SECRET", "TINYTUTOR_DATABASE_URL", "RAY_AUTH_TOKEN")


@contextlib.contextmanager
def _environment_without(names: tuple[str, ...]):
    """os.environ without ``names`` for the duration (the fork server copies the environment as it starts,
    and every job's process has the fork server's).
    Used around a synchronous start with no await inside, so no other task of the loop sees the gap."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# What a worker imports before it trains (about 10 s of CPU on this machine): the fork server imports it
# once, and each job's process is forked from it ready to train (benchmarks/bench_worker_start.py).
PRELOAD = ("jobs.worker", "trainer.pipeline")


class LocalExecutor:
    """One process per job on this machine, forked from multiprocessing's fork server: a clean process
    that imported the trainer once (``PRELOAD``) and never had an event loop, threads or database
    connections, so each job starts ready to train instead of importing torch again. The fork server
    starts with the first job, without the process's secrets (``SECRET_ENV``, ``hidden_env``), and its
    children inherit its environment: a secret set later never reaches a job either."""

    name = "local"

    def __init__(self, target: Callable[[WorkerPayload], None] | None = None, hidden_env: tuple[str, ...] = ()):
        from .worker import run_job

        self.target = target or run_job
        self.hidden_env = tuple(dict.fromkeys(SECRET_ENV + tuple(hidden_env)))
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(list(PRELOAD))

    def _fork_server(self) -> None:
        """Start the fork server if it is not running: at once, with the environment less the secrets
        (it imports ``PRELOAD`` afterwards, in its own time)."""
        from multiprocessing import forkserver

        with _environment_without(self.hidden_env):
            forkserver.ensure_running()

    async def launch(self, payload: WorkerPayload) -> ProcessHandle:
        os.makedirs(os.path.dirname(payload.log_path), exist_ok=True)  # OSError: read-only data directory
        proc = self._ctx.Process(target=self.target, args=(payload,), name=f"tinytutor-job-{payload.job_id}",
                                 daemon=False)
        self._fork_server()
        # the first start waits for the fork server's imports (seconds): in a thread, the loop keeps serving
        await asyncio.to_thread(proc.start)
        return ProcessHandle(payload.job_id, proc)

    async def close(self) -> None:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
