"""What the data directory may forget (``tinytutor gc``, the daily clean-up) and what a class stores.

Kept, whatever its age: an upload that a queued or running job will read, that a stored model was
trained on (a model's dataset lives as long as the model: reruns and reports need it), or that is an
assignment's test or training file. Kept for ``[storage].keep_uploads_days``: every other upload.
Failed and cancelled jobs' files (their logs, plots and any partial model) are kept
``[storage].keep_failed_days`` after they ended. The rows stay: a job's history, its dataset's name
and counts; a removed upload's row is marked ``removed_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from .models import CANCELLED, FAILED, QUEUED, RUNNING, Assignment, Dataset, Job, Model


@dataclass
class Forgettable:
    datasets: dict[str, list[int]]  # a stored upload's relative path -> the dataset rows that name it
    jobs: list[int]  # failed or cancelled jobs whose files may go


def _protected_datasets():
    """Dataset ids that must keep their file: live jobs', stored models', assignments'."""
    live = select(Job.dataset_id).where(Job.status.in_((QUEUED, RUNNING)))
    live_val = select(Job.validation_dataset_id).where(Job.status.in_((QUEUED, RUNNING)),
                                                       Job.validation_dataset_id.is_not(None))
    modelled = select(Job.dataset_id).join(Model, Model.job_id == Job.id)
    modelled_val = (select(Job.validation_dataset_id).join(Model, Model.job_id == Job.id)
                    .where(Job.validation_dataset_id.is_not(None)))
    tests = select(Assignment.test_dataset_id)
    trains = select(Assignment.train_dataset_id).where(Assignment.train_dataset_id.is_not(None))
    return union(live, live_val, modelled, modelled_val, tests, trains)


async def forgettable(s: AsyncSession, uploads_before: datetime | None, failed_before: datetime | None) -> Forgettable:
    """What may be removed: uploads older than ``uploads_before`` that nothing keeps (a file shared by
    several rows, the same content uploaded twice, goes only when none of them keeps it), and failed
    or cancelled jobs that ended before ``failed_before``. None: keep that kind forever."""
    datasets: dict[str, list[int]] = {}
    if uploads_before is not None:
        protected = _protected_datasets().subquery()
        keep_paths = select(Dataset.path).where(or_(Dataset.id.in_(select(protected.c[0])),
                                                    Dataset.created_at >= uploads_before))
        rows = (await s.execute(select(Dataset.id, Dataset.path).where(
            Dataset.removed_at.is_(None), Dataset.path.not_in(keep_paths)).order_by(Dataset.id))).all()
        for ds_id, path in rows:
            datasets.setdefault(path, []).append(ds_id)
    jobs: list[int] = []
    if failed_before is not None:
        jobs = list((await s.execute(select(Job.id).where(
            Job.status.in_((FAILED, CANCELLED)), Job.finished_at < failed_before).order_by(Job.id))).scalars())
    return Forgettable(datasets, jobs)


async def class_storage(s: AsyncSession, guild_id: str) -> tuple[int, list[str]]:
    """A class's stored uploads in bytes (each file once) and its models' directories (relative)."""
    sizes = (await s.execute(select(Dataset.path, Dataset.bytes).where(
        Dataset.guild_id == guild_id, Dataset.removed_at.is_(None)).distinct())).all()
    uploads = sum(dict(sizes).values())
    models = list((await s.execute(select(Model.path).where(Model.guild_id == guild_id))).scalars())
    return uploads, models
