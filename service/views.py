"""What callers of the service get back: who is asking (``Caller``), plain views of jobs, models, reports
and standings, and ``csv_cell`` (``core.files``) for every CSV the service writes. No database objects cross this line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from core.files import csv_cell
from storage.models import FINISHED, QUEUED, RUNNING  # a job's statuses, as views carry them
from trainer.artefacts import LEARNING_CURVE_PNG, TEST_EXAMPLES  # names only: no ML imported

__all__ = ["FINISHED", "QUEUED", "RUNNING", "Caller", "JobView", "ModelView", "ReportView", "Standing",
           "Submitted", "approx_duration", "csv_cell"]


def approx_duration(seconds: float) -> str:
    """A wait or an ETA in words ("about 2 min"), as every message of the service says it."""
    from trainer.progress import approx_duration as in_words

    return in_words(seconds)


@dataclass(frozen=True)
class Caller:
    """Who is asking, in which class. ``operator`` is the server's own command line (all rights)."""

    guild_id: str
    user_id: str
    instructor: bool = False
    name: str = ""
    operator: bool = False

    @property
    def steers(self) -> bool:
        return self.instructor or self.operator


@dataclass
class JobView:
    id: int
    owner_id: str
    name: str
    status: str
    position: int | None  # 1 = next to start; None unless queued
    eta_seconds: float | None  # until the result is expected (queued: the wait plus a typical job)
    progress: dict | None  # as the worker wrote it (JSON keeps it as is); ``live`` is the typed value
    attempts: int
    priority: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_id: int | None = None
    macro_f1: float | None = None
    not_posted: str | None = None  # why the outcome could not be posted in its channel (after retries)

    @property
    def live(self):
        """The running job's progress as a ``trainer.progress.Progress`` (``training``, ``fraction``,
        ``epoch_label``, ``loss``, ``eta_seconds``), which every renderer formats; None unless running."""
        from trainer.progress import Progress

        return Progress.from_dict(self.progress) if self.status == "running" else None

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("created_at", "started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


@dataclass
class Submitted:
    job: JobView  # the first of ``jobs``
    dataset_id: int
    rows: int
    labels: dict[str, int]
    warnings: list[dict] = field(default_factory=list)
    jobs: list[JobView] = field(default_factory=list)  # every job queued: one, or an experiment's
    experiment_id: int | None = None
    assignment: object | None = None  # service.boards.AssignmentView after this submission: its limits


@dataclass
class ModelView:
    id: int
    owner_id: str
    name: str
    version: int
    visibility: str
    labels: list[str]
    base_model: str
    layers_kept: list[int]
    layers_base: int
    params: int
    params_base: int
    metrics: dict
    job_id: int | None
    created_at: datetime
    is_default: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass
class Standing:
    """Where one submission stands on its assignment's board (for its owner's report)."""

    assignment: str
    macro_f1: float
    accuracy: float
    per_class_f1: dict
    rank: int  # where this submission would stand among the students' best submissions
    students: int
    best: bool  # it is the student's best submission so far


@dataclass
class ReportView:
    job_id: int
    owner_id: str
    name: str
    model_id: int | None
    metrics: dict
    report_text: str
    confusion_png: Path
    curve_png: Path
    version: int | None = None  # the model's version, while the model exists
    not_posted: str | None = None  # as JobView.not_posted
    standing: Standing | None = None  # a submission to an assignment: its place on the board

    # The report's other files sit beside its confusion matrix (``trainer.artefacts.REPORT_FILES``); a run
    # too small for a learning curve, or one from before they were kept, has none.
    @property
    def learning_curve_png(self) -> Path | None:
        return self._beside(LEARNING_CURVE_PNG)

    @property
    def test_examples_json(self) -> Path | None:
        return self._beside(TEST_EXAMPLES)

    def _beside(self, name: str) -> Path | None:
        path = self.confusion_png.parent / name
        return path if path.is_file() else None
