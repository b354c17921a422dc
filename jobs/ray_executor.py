"""Jobs as Ray tasks, for classes that outgrow one machine ([queue].executor = "ray").

What runs where:
- The scheduler's host (the bot or ``tinytutor scheduler``) claims jobs from the database as always
  (Ray never decides what runs next), reads the job's files from the artefact store and sends them
  to a Ray task as bytes: the upload, the validation file, a teacher model as a tar archive.
- The Ray task (any node of the cluster, one GPU when the cluster has GPUs, else ``[ray].cpus_per_job``
  CPUs) writes them to its own scratch directory, trains with the same ``run_training``, and returns
  the metrics and the model directory as a tar archive. It reports progress to a small Ray actor;
  it needs neither the database nor the scheduler host's files.
- A coroutine on the scheduler's host is the job's database side: every heartbeat interval it writes
  the task's latest progress and the heartbeat, and at the end it unpacks the model into the artefact
  store and records the outcome (or the failure the task reported).

Cancel and the time limit end the task with ``ray.cancel(..., force=True)``. A task whose worker or
node dies ends without an outcome, and the reaper requeues it by the same rules as a dead local
process (Ray's own retries are off, so attempts are counted in one place).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core.files import atomic_directory
from storage import queue as q
from storage.db import Database
from storage.files import ArtefactStore

from .outcome import failure_message, prepare_process, record_failure, record_success
from .payload import WorkerPayload

log = logging.getLogger("tinytutor.ray")


# -- a local runtime ---------------------------------------------------------------------------------

def start_local_runtime(num_cpus: int | None, **options) -> None:
    """A Ray runtime on this machine, which only holders of Ray's token can use.

    Ray 2.60's servers (GCS, raylet, workers) listen on every interface whatever address they are
    given (it never takes the loopback as a node's address), and its tasks carry students' files and
    hidden test sets, so the runtime must require Ray's token: Ray does so by default for a new local
    runtime, and RAY_AUTH_MODE=disabled is refused here. The token (RAY_AUTH_TOKEN_PATH, else
    ~/.ray/auth_token, which Ray writes world-readable) is made readable by its owner only."""
    import ray

    mode = os.environ.get("RAY_AUTH_MODE", "token").strip().lower()
    if mode != "token":
        raise OSError(f"RAY_AUTH_MODE={mode} would let anyone who reaches this machine's Ray ports run code and "
                      "read students' files: unset it (TinyTutor's local Ray runtime uses Ray's token)")
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, **options)
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if token.is_file():
        token.chmod(0o600)


# -- the task (runs on a Ray worker) -----------------------------------------------------------------

def _tar(directory: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for item in sorted(directory.iterdir()):
            tar.add(item, arcname=item.name)
    return buf.getvalue()


def _untar(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(into, filter="data")


def train_task(payload: WorkerPayload, files: dict[str, bytes], board) -> dict:
    """Train one job from its files (bytes) in a scratch directory; returns ``metrics`` and ``model_tar``,
    or ``error`` (a message for the student). ``board`` is the progress actor. The payload's paths are
    names in the scratch directory (``RayExecutor._ship``)."""
    from trainer.pipeline import run_training

    prepare_process(payload)
    board.put.remote(payload.lease, {"stage": "loading", "message": "starting on a Ray worker", "pid": os.getpid()})
    with tempfile.TemporaryDirectory(prefix=f"tinytutor-job-{payload.job_id}-") as scratch:
        scratch = Path(scratch)
        spec, hidden = payload.spec, payload.hidden
        paths = {"data_path": scratch / spec.data_path, "out_dir": scratch / "model"}
        paths["data_path"].write_bytes(files["data"])
        if spec.validation_path:
            paths["validation_path"] = scratch / spec.validation_path
            paths["validation_path"].write_bytes(files["validation"])
        if spec.teacher:
            paths["teacher"] = scratch / spec.teacher
            _untar(files["teacher"], paths["teacher"])
        spec = replace(spec, **{k: str(v) for k, v in paths.items()})
        if hidden is not None:  # the assignment's hidden test set: scored here, only aggregates go back
            (scratch / hidden.path).write_bytes(files["hidden"])
            hidden = replace(hidden, path=str(scratch / hidden.path))
        last = [0.0]

        def progress(p) -> None:  # throttled to the heartbeat: the host writes what it finds
            now = time.monotonic()
            if now - last[0] >= payload.heartbeat_seconds / 2 or p.stage in ("evaluating", "saving", "done"):
                last[0] = now
                board.put.remote(payload.lease, p.to_dict() | {"pid": os.getpid()})

        try:
            result = run_training(spec, progress, payload.registry, hidden)
        except Exception as exc:
            error, for_the_log = failure_message(exc, payload.job_id)
            return {"error": error, "traceback": for_the_log}
        return {"metrics": result.metrics, "model_tar": _tar(result.model_dir), "hidden": result.hidden}


class ProgressBoard:
    """The latest progress of each running attempt, by its lease (a Ray actor; the tasks write, the host
    reads). Keyed by lease, so a killed attempt's last report never passes for the next attempt's."""

    def __init__(self):
        self.latest: dict[str, dict] = {}

    def put(self, lease: str, progress: dict) -> None:
        self.latest[lease] = progress

    def take(self, lease: str) -> dict | None:
        return self.latest.pop(lease, None)


# -- the scheduler's host --------------------------------------------------------------------------

class RayHandle:
    pid = None  # no process on this host

    def __init__(self, job_id: int, ref):
        self.job_id, self.ref = job_id, ref
        self.proxy: asyncio.Task | None = None
        self.worker_pid: int | None = None  # the Ray worker's process, as the task reported it
        self.end = "running"

    def alive(self) -> bool:
        return self.proxy is not None and not self.proxy.done()

    async def stop(self, grace_seconds: float) -> None:
        import ray

        ray.cancel(self.ref, force=True)
        if self.proxy is not None and not self.proxy.done():
            self.proxy.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # ending it is all that matters here
                await self.proxy

    def describe_end(self) -> str:
        return f"Ray task: {self.end}"

    def close(self) -> None:
        return None


class RayExecutor:
    name = "ray"

    def __init__(self, settings):
        self.settings = settings
        self.ray_cfg = settings.ray
        self.store = ArtefactStore(settings.storage.data_dir)
        self._board = None
        self._started_runtime = False
        self._db: Database | None = None

    # -- the cluster -----------------------------------------------------------------------------
    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            if self.ray_cfg.address:
                ray.init(address=self.ray_cfg.address, include_dashboard=False, log_to_driver=False)
            else:  # a local Ray runtime on this machine
                start_local_runtime(self.ray_cfg.local_cpus or None)
                self._started_runtime = True
        if self._board is None:
            self._board = ray.remote(num_cpus=0)(ProgressBoard).remote()

    def capacity(self, default: int) -> int:
        """Jobs the cluster can run at once: ``[ray].slots``, else one per GPU, else its CPUs per job."""
        import ray

        self._connect()
        if self.ray_cfg.slots:
            return self.ray_cfg.slots
        resources = ray.cluster_resources()
        if resources.get("GPU"):
            return int(resources["GPU"])
        return max(1, int(resources.get("CPU", 1) // self.ray_cfg.cpus_per_job)) if resources else default

    def _options(self) -> dict:
        import ray

        gpus = ray.cluster_resources().get("GPU", 0)
        need = {"num_gpus": 1} if gpus else {"num_cpus": self.ray_cfg.cpus_per_job}
        return need | {"max_retries": 0, "retry_exceptions": False}

    # -- a job -----------------------------------------------------------------------------------
    async def launch(self, payload: WorkerPayload) -> RayHandle:
        import ray

        await asyncio.to_thread(self._connect)
        shipped, files = await asyncio.to_thread(self._ship, payload)
        try:
            ref = ray.remote(train_task).options(**self._options()).remote(shipped, files, self._board)
        except Exception as exc:  # the cluster refused it: a failed start, with its reason
            raise OSError(f"Ray refused the task: {exc}") from exc
        handle = RayHandle(payload.job_id, ref)
        handle.proxy = asyncio.create_task(self._watch(payload, handle), name=f"tinytutor-ray-job-{payload.job_id}")
        return handle

    def _ship(self, payload: WorkerPayload) -> tuple[WorkerPayload, dict[str, bytes]]:
        """What travels to the task: the payload for elsewhere with its paths as names in the task's scratch
        directory, and the files as bytes."""
        spec, hidden = payload.spec, payload.hidden
        files = {"data": Path(spec.data_path).read_bytes()}
        names = {"data_path": "data" + Path(spec.data_path).suffix, "out_dir": None}
        if spec.validation_path:
            files["validation"] = Path(spec.validation_path).read_bytes()
            names["validation_path"] = "validation" + Path(spec.validation_path).suffix
        if spec.teacher:
            files["teacher"] = _tar(Path(spec.teacher))
            names["teacher"] = "teacher"
        if hidden is not None:
            files["hidden"] = Path(hidden.path).read_bytes()
            hidden = replace(hidden, path="hidden" + Path(hidden.path).suffix)
        return replace(payload.for_elsewhere(), spec=replace(spec, **names), hidden=hidden), files

    async def _watch(self, payload: WorkerPayload, handle: RayHandle) -> None:
        """The job's database side: heartbeat and progress while the task runs, then its outcome."""
        import ray

        job_id, lease = payload.job_id, payload.lease
        db = self._database(payload.database_url)
        done = asyncio.wrap_future(handle.ref.future())
        while True:
            try:
                result = await asyncio.wait_for(asyncio.shield(done), payload.heartbeat_seconds)
                break
            except TimeoutError:
                pass
            except (ray.exceptions.RayError, asyncio.CancelledError) as exc:  # died, cancelled, node lost
                handle.end = f"{exc.__class__.__name__}"
                log.error("job %s: the Ray task ended without a result: %s", job_id, exc)
                return
            progress = await self._board.take.remote(lease)
            if progress is not None:
                handle.worker_pid = progress.pop("pid", handle.worker_pid)
            try:
                async with db.transaction() as s:
                    ours, _ = await q.heartbeat(s, job_id, lease, progress)
            except Exception:  # the database briefly unreachable: the task trains on; try next beat
                log.exception("job %s: heartbeat not written", job_id)
                continue
            if not ours:  # cancelled or handed to another worker: the reaper ends the task
                return
        handle.end = "finished"
        if "error" in result:
            if result.get("traceback"):
                log.error("job %s failed in its Ray task:\n%s", job_id, result["traceback"])
            await record_failure(db, job_id, lease, result["error"])
            return
        await asyncio.to_thread(self._keep_model, payload.model_rel, result["model_tar"])
        await record_success(db, self.store, job_id, lease, payload.model_rel, result["metrics"],
                             result.get("hidden"))

    def _keep_model(self, model_rel: str, data: bytes) -> None:
        """Unpack the returned model into the artefact store: a temporary directory, then a rename."""
        with atomic_directory(self.store.path(model_rel), replace=True) as tmp:
            _untar(data, tmp)

    def _database(self, url: str) -> Database:
        if self._db is None or self._db.url != url:
            self._db = Database(url)
        return self._db

    async def close(self) -> None:
        import ray

        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._started_runtime and ray.is_initialized():
            ray.shutdown()
            self._started_runtime = False
            self._board = None
