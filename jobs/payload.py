"""What a worker needs to run one job, built once by the scheduler from one validated spec.

Plain data: it pickles into a worker process (``jobs.worker``), and the Ray executor sends a
copy without this host's database address, its files as bytes beside it (``jobs.ray_executor``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.spec import TrainSpec
from trainer.hidden import HiddenTest


@dataclass(frozen=True)
class WorkerPayload:
    job_id: int
    lease: str  # the claim's; every write of the worker is conditional on it
    spec: TrainSpec  # paths are this host's (a Ray task gets its own, in its scratch directory)
    registry: dict  # [base_models]: name -> directory or table
    model_rel: str  # where the model goes in the artefact store
    heartbeat_seconds: float
    deadline_unix: float  # the job's time limit, as a wall-clock time
    time_limit_minutes: float
    log_path: str
    allow_downloads: bool  # [hub].allow_downloads: otherwise the process is offline
    nice: int  # [queue].worker_nice
    database_url: str  # where the local worker records its outcome ("" in what travels to Ray)
    data_dir: str
    hidden: HiddenTest | None = None  # an assignment's hidden test set: scored, never trained on

    def for_elsewhere(self) -> WorkerPayload:
        """The copy that travels to another machine: no database address (it may hold a password), no
        host directories; the task's files travel as bytes beside it."""
        return replace(self, database_url="", data_dir="", log_path="")
