"""The use cases, for the bot and the command line alike. No ``discord`` import: callers pass ids and
plain values and get plain results; refusals are ``bot.errors`` exceptions with readable messages.

Who may do what:
- a student sees, cancels and uses their own jobs and models, and models shared with their class;
- an instructor (Discord's Manage Server or the configured role; decided by the caller) also sees
  and steers the whole class's queue and quotas;
- nothing crosses from one class (guild) to another: a job or model of another class is "not found".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from storage import queue as q
from storage.db import Database
from storage.files import ArtefactStore
from storage.models import (
    CLASS,
    FINISHED,
    INSTRUCTOR,
    PRIVATE,
    QUEUED,
    RUNNING,
    STUDENT,
    SUCCEEDED,
    Classroom,
    Dataset,
    Job,
    Member,
    Model,
    Report,
    utcnow,
)
from storage.queue import insert_if_absent

from .errors import (
    Conflict,
    InvalidDataset,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from .microbatch import MicroBatcher

log = logging.getLogger("tinytutor.service")

# Settings a student may choose per job (the rest come from config.toml).
JOB_PARAMS = ("layers", "layer_list", "strategy", "method", "epochs", "lr", "max_length", "batch_size",
              "base", "text_column", "label_column", "seed", "augment", "teacher_model_id")
QUOTA_NAMES = ("max_queued_per_student", "max_running_per_student", "max_jobs_per_day", "max_rows", "max_bytes",
               "max_epochs")
MAX_NAME = 100
MAX_PREDICT_TEXTS = 500
MAX_PREDICT_CHARS = 4000
DEFAULT_JOB_SECONDS = 180.0  # ETA guess before the class has finished any job


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
    progress: dict | None
    attempts: int
    priority: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_id: int | None = None
    macro_f1: float | None = None
    not_posted: str | None = None  # why the outcome could not be posted in its channel (after retries)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("created_at", "started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


@dataclass
class Submitted:
    job: JobView
    dataset_id: int
    rows: int
    labels: dict[str, int]
    warnings: list[dict] = field(default_factory=list)


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


class Service:
    def __init__(self, db: Database, settings, predictors=None, slots: int | None = None):
        self.db, self.settings = db, settings
        self.store = ArtefactStore(settings.storage.data_dir)
        self._predictors = predictors  # built on the first prediction: a submission never imports torch
        self.batcher = MicroBatcher(self._predict_batch, settings.queue.predict_batch_ms / 1000)
        self.slots = slots or max(1, settings.queue.cpu_slots)

    @property
    def predictors(self):
        if self._predictors is None:
            from trainer.predict import PredictorCache

            self._predictors = PredictorCache(self.settings.queue.predict_cache_size,
                                              threads=self.settings.queue.predict_threads)
        return self._predictors

    # -- classes and members -----------------------------------------------------------------------
    async def ensure_class(self, guild_id: str, name: str = "") -> Classroom:
        async with self.db.transaction() as s:
            return await self._class(s, guild_id, name)

    async def _class(self, s, guild_id: str, name: str = "") -> Classroom:
        cls = await s.get(Classroom, str(guild_id))
        if cls is None:  # concurrent first requests of a class: one insert wins, the others read it
            await insert_if_absent(s, Classroom, dict(guild_id=str(guild_id), name=name, paused=False,
                                                      created_at=utcnow(), **asdict(self.settings.quotas)))
            cls = await s.get(Classroom, str(guild_id))
        if name and cls.name != name:
            cls.name = name
        return cls

    async def _member(self, s, caller: Caller, lock: bool = False) -> Member:
        """The caller's member row, created on first use; ``lock`` serialises one student's submissions
        on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
        role = INSTRUCTOR if caller.instructor else STUDENT
        await self._class(s, caller.guild_id)  # a command may be the first this class ever sends
        await insert_if_absent(s, Member, dict(guild_id=caller.guild_id, user_id=caller.user_id,
                                               display_name=caller.name, role=role, created_at=utcnow()))
        stmt = select(Member).where(Member.guild_id == caller.guild_id, Member.user_id == caller.user_id)
        m = (await s.execute(stmt.with_for_update() if lock else stmt)).scalar_one()
        m.role = role
        if caller.name:
            m.display_name = caller.name
        return m

    # -- checking and submitting -------------------------------------------------------------------
    async def check(self, caller: Caller, content: bytes, filename: str, params: dict | None = None) -> dict:
        """Validate and lint a file without storing anything (``/check``). Raises InvalidDataset.
        ``params`` may name the text and label columns, the base model and max_length."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        unknown = set(params) - {"text_column", "label_column", "base", "max_length"}
        if unknown:
            raise InvalidRequest(f"Unknown check settings: {', '.join(sorted(unknown))}")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
        self._check_bytes(cls, len(content))
        staged = self.store.staging_file(content, filename)
        try:
            _, info = await asyncio.to_thread(self._check_sync, staged, params, cls)
        finally:
            staged.unlink(missing_ok=True)
        self._check_rows(cls, info["rows"])
        return info

    async def submit(self, caller: Caller, content: bytes, filename: str, *, name: str, params: dict | None = None,
                     validation: tuple[bytes, str] | None = None, channel_id: str | None = None) -> Submitted:
        """Queue a training job. Quotas and the file are checked first; on any refusal nothing is stored."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        unknown = set(params) - set(JOB_PARAMS)
        if unknown:
            raise InvalidRequest(f"Unknown training settings: {', '.join(sorted(unknown))}")
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidRequest(f"Give the model a name of 1 to {MAX_NAME} characters.")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            await self._check_job_quotas(s, cls, caller)
        self._check_bytes(cls, len(content))
        if validation is not None:
            self._check_bytes(cls, len(validation[0]))
        epochs = params.get("epochs", self.settings.training.get("epochs", 6))
        if epochs > cls.max_epochs:
            raise QuotaExceeded("max_epochs", cls.max_epochs, f"{epochs} epochs is more than this class allows")
        teacher_labels = None
        if params.get("teacher_model_id") is not None:
            params.setdefault("method", "distill")  # a teacher means distillation
            if params["method"] != "distill":
                raise InvalidRequest(f"A teacher is for the distill method, not {params['method']}; choose method "
                                     "distill, or leave the teacher out.")
            async with self.db.transaction() as s:
                teacher = await self._usable_model(s, caller, params["teacher_model_id"])
                params["teacher_model_id"], teacher_labels = teacher.id, list(teacher.labels)
        if params.get("augment") and params.get("method", self.settings.training.get("method")) != "distill":
            raise InvalidRequest("Augmented copies are labelled by a teacher, so augment is for the distill "
                                 "method; choose method distill, or leave augment out.")
        try:
            spec = self.settings.train_spec("upload", **_spec_params(params))
            spec.validate()
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"That training setting cannot work: {exc}") from None

        staged = self.store.staging_file(content, filename)
        staged_val = self.store.staging_file(*validation) if validation else None
        created: list[Path] = []
        try:
            info, val_info = await asyncio.to_thread(self._check_submission, staged, staged_val, params, cls)
            self._check_rows(cls, info["rows"])
            if teacher_labels is not None:
                from trainer.pipeline import teacher_label_mismatch

                mismatch = teacher_label_mismatch(teacher_labels, list(info["labels"]))
                if mismatch:
                    raise InvalidRequest(mismatch)
            async with self.db.transaction() as s:
                cls = await self._class(s, caller.guild_id)
                await self._member(s, caller, lock=True)
                await self._check_job_quotas(s, cls, caller)  # again: another submission may have landed
                ds = await self._dataset(s, caller, staged, filename, info, created)
                val = await self._dataset(s, caller, staged_val, validation[1], val_info, created) if validation else None
                job = Job(guild_id=caller.guild_id, owner_id=caller.user_id, dataset_id=ds.id,
                          validation_dataset_id=val.id if val else None, name=name, params=params, status=QUEUED,
                          priority=self.settings.queue.instructor_priority if caller.steers else 0,
                          max_attempts=self.settings.queue.max_attempts, channel_id=channel_id, attempts=0,
                          cancel_requested=False)
                s.add(job)
                await s.flush()
                job_id, ds_id = job.id, ds.id
        except BaseException:
            for p in created:  # moved into place for a transaction that did not commit
                p.unlink(missing_ok=True)
            raise
        finally:
            staged.unlink(missing_ok=True)
            if staged_val:
                staged_val.unlink(missing_ok=True)
        view = await self.job(caller, job_id)
        return Submitted(view, ds_id, info["rows"], info["labels"], info["warnings"])

    def _check_bytes(self, cls: Classroom, n: int) -> None:
        if n > cls.max_bytes:
            raise QuotaExceeded("max_bytes", cls.max_bytes, f"The file is {n:,} bytes")

    def _check_rows(self, cls: Classroom, rows: int) -> None:
        if rows > cls.max_rows:
            raise QuotaExceeded("max_rows", cls.max_rows, f"The file has {rows:,} examples")

    async def _check_job_quotas(self, s, cls: Classroom, caller: Caller) -> None:
        open_jobs = (await s.execute(select(func.count()).select_from(Job).where(
            Job.guild_id == caller.guild_id, Job.owner_id == caller.user_id,
            Job.status.in_((QUEUED, RUNNING))))).scalar_one()
        if open_jobs >= cls.max_queued_per_student:
            raise QuotaExceeded("max_queued_per_student", cls.max_queued_per_student,
                                f"You already have {open_jobs} job(s) queued or running; wait for one to finish or cancel one")
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        today = (await s.execute(select(func.count()).select_from(Job).where(
            Job.guild_id == caller.guild_id, Job.owner_id == caller.user_id, Job.created_at >= day))).scalar_one()
        if today >= cls.max_jobs_per_day:
            raise QuotaExceeded("max_jobs_per_day", cls.max_jobs_per_day,
                                f"You have submitted {today} job(s) today (UTC); try again tomorrow")

    def _check_sync(self, path: Path, params: dict, cls: Classroom):
        from trainer.check import check_file
        from trainer.errors import DataError, TrainerError

        # [data] limits are the server's hard caps; the class's (lower) quotas are checked around this
        spec = self.settings.train_spec(str(path), **_spec_params(params))
        try:
            return check_file(spec, self.settings.base_models)
        except DataError as exc:
            raise InvalidDataset(exc.problems) from None
        except TrainerError as exc:
            raise InvalidRequest(str(exc)) from None

    def _check_submission(self, staged: Path, staged_val: Path | None, params: dict, cls: Classroom):
        """The file check, the validation file check and the layer choice, in a worker thread."""
        from trainer import data as data_mod
        from trainer.errors import DataError, TrainerError
        from trainer.models import check_weights, layer_count, resolve_base
        from trainer.pruning import select_layers

        ds, info = self._check_sync(staged, params, cls)
        val_info = None
        if staged_val is not None:
            try:
                val = data_mod.load_dataset(str(staged_val), self.settings.data, ds.text_column, ds.label_column,
                                            for_training=False)
            except DataError as exc:
                raise InvalidDataset(exc.problems) from None
            val_info = {"rows": len(val), "labels": val.label_counts, "warnings": [w.to_dict() for w in val.warnings],
                        "encoding": val.encoding, "format": val.fmt}
        spec = self.settings.train_spec(str(staged), **_spec_params(params))
        try:
            base = resolve_base(spec.base, self.settings.base_models)
            if base.local:
                check_weights(base.source, base.name)
            select_layers(layer_count(base), spec.layers, spec.strategy, spec.layer_list)
        except (TrainerError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from None
        return info, val_info

    async def _dataset(self, s, caller: Caller, staged: Path, filename: str, info: dict, created: list[Path]) -> Dataset:
        from storage.files import sha256_file

        digest = await asyncio.to_thread(sha256_file, staged)
        existing = (await s.execute(select(Dataset).where(
            Dataset.guild_id == caller.guild_id, Dataset.owner_id == caller.user_id, Dataset.sha256 == digest)
        )).scalars().first()
        if existing is not None and self.store.path(existing.path).is_file():
            return existing
        size = staged.stat().st_size
        final, new = self.store.keep_dataset(staged, digest)
        if new:
            created.append(final)
        ds = Dataset(guild_id=caller.guild_id, owner_id=caller.user_id, name=Path(filename).name[:200] or "upload",
                     sha256=digest, path=self.store.rel(final), rows=info["rows"], bytes=size,
                     labels=info["labels"], lint=info)
        s.add(ds)
        await s.flush()
        return ds

    # -- jobs ------------------------------------------------------------------------------------
    async def _visible_job(self, s, caller: Caller, job_id: int) -> Job:
        job = await s.get(Job, int(job_id)) if _valid_id(job_id) else None
        if job is None or job.guild_id != caller.guild_id and not caller.operator:
            raise NotFound(f"There is no job {job_id} in this class.")
        if job.owner_id != caller.user_id and not caller.steers:
            raise PermissionDenied(f"Job {job_id} belongs to another student; you can only see your own jobs.")
        return job

    async def job(self, caller: Caller, job_id: int) -> JobView:
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            return (await self._views(s, [job]))[0]

    async def jobs(self, caller: Caller, everyone: bool = False, statuses: tuple[str, ...] | None = None,
                   limit: int = 50) -> list[JobView]:
        """The caller's jobs, newest first; ``everyone`` (instructors) lists the whole class."""
        if everyone and not caller.steers:
            raise PermissionDenied("Only instructors can see the whole class's jobs.")
        async with self.db.transaction() as s:
            stmt = select(Job).where(Job.guild_id == caller.guild_id)
            if not everyone:
                stmt = stmt.where(Job.owner_id == caller.user_id)
            if statuses:
                stmt = stmt.where(Job.status.in_(statuses))
            jobs = list((await s.execute(stmt.order_by(Job.id.desc()).limit(limit))).scalars())
            return await self._views(s, jobs)

    async def class_queue(self, caller: Caller) -> list[JobView]:
        """Instructors: the class's running jobs, then its queued jobs in the order they will start."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can see the class queue.")
        views = await self.jobs(caller, everyone=True, statuses=(QUEUED, RUNNING), limit=1000)
        return sorted(views, key=lambda v: (v.status != RUNNING, v.position or 0, v.id))

    async def _views(self, s, jobs: list[Job]) -> list[JobView]:
        from trainer.scheduler import fair_order

        positions: dict[int, int] = {}
        if any(j.status == QUEUED for j in jobs):
            order = fair_order(await q.queue_state(s))
            positions = {c.id: i + 1 for i, c in enumerate(order)}
        avg = await self._typical_seconds(s)
        running_left = []
        for j in jobs:
            if j.status == RUNNING:
                eta = (j.progress or {}).get("eta_seconds")
                running_left.append(eta if eta is not None else avg)
        models = {}
        done = [j.id for j in jobs if j.status == SUCCEEDED]
        if done:
            for m in (await s.execute(select(Model).where(Model.job_id.in_(done)))).scalars():
                models[m.job_id] = m
        free_at = sorted(running_left)[: self.slots] + [0.0] * max(0, self.slots - len(running_left))
        gone = await q.undelivered(s, [j.id for j in jobs if j.status in FINISHED])
        out = []
        for j in jobs:
            pos = positions.get(j.id) if j.status == QUEUED else None
            if pos is not None:
                # it starts when its slot turn comes (slots free up a typical job length apart), then runs
                eta = free_at[(pos - 1) % self.slots] + ((pos - 1) // self.slots) * avg + avg
            elif j.status == RUNNING:
                eta = (j.progress or {}).get("eta_seconds")
            else:
                eta = None
            m = models.get(j.id)
            out.append(JobView(j.id, j.owner_id, j.name, j.status, pos, eta, j.progress, j.attempts, j.priority,
                               j.error, j.created_at, j.started_at, j.finished_at, m.id if m else None,
                               m.metrics.get("macro_f1") if m else None, _not_posted(gone.get(j.id))))
        return out

    async def _typical_seconds(self, s) -> float:
        rows = (await s.execute(select(Job.started_at, Job.finished_at).where(
            Job.status == SUCCEEDED, Job.started_at.is_not(None)).order_by(Job.id.desc()).limit(20))).all()
        spans = [(b - a).total_seconds() for a, b in rows if a and b]
        return sum(spans) / len(spans) if spans else DEFAULT_JOB_SECONDS

    async def cancel(self, caller: Caller, job_id: int) -> JobView:
        """A queued job is cancelled at once; a running one is stopped by the scheduler within seconds."""
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            if job.status in FINISHED:
                done = {"succeeded": "finished", "failed": "failed", "cancelled": "been cancelled"}[job.status]
                raise Conflict(f"Job {job_id} has already {done}.")
            who = caller.user_id if not caller.operator else "operator"
            if job.status == QUEUED:
                if await q.cancel(s, job.id, None, by=who) is None:
                    raise Conflict(f"Job {job_id} just started; try again to stop it.")
            else:
                job.cancel_requested = True
        return await self.job(caller, job_id)

    async def set_priority(self, caller: Caller, job_id: int, priority: int) -> JobView:
        if not caller.steers:
            raise PermissionDenied("Only instructors can change a job's priority.")
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            job.priority = int(priority)
        return await self.job(caller, job_id)

    async def report(self, caller: Caller, job_id: int) -> ReportView:
        async with self.db.transaction() as s:
            job = await self._visible_job(s, caller, job_id)
            rep = (await s.execute(select(Report).where(Report.job_id == job.id))).scalar_one_or_none()
            if rep is None:
                state = f"failed: {job.error}" if job.error and job.status != QUEUED else job.status
                raise Conflict(f"Job {job_id} has no report yet ({state}).")
            return await self._report_view(s, job, rep)

    async def _report_view(self, s, job: Job, rep: Report) -> ReportView:
        model = await s.get(Model, rep.model_id) if rep.model_id else None
        gone = (await q.undelivered(s, [job.id])).get(job.id)
        return ReportView(job.id, job.owner_id, job.name, rep.model_id, rep.metrics, rep.report_text,
                          self.store.path(rep.confusion_png), self.store.path(rep.curve_png),
                          model.version if model else None, _not_posted(gone))

    # -- models ----------------------------------------------------------------------------------
    async def models(self, caller: Caller) -> list[ModelView]:
        """The caller's models and those shared with their class, newest first."""
        async with self.db.transaction() as s:
            member = await self._member(s, caller)
            rows = (await s.execute(select(Model).where(
                Model.guild_id == caller.guild_id,
                (Model.owner_id == caller.user_id) | (Model.visibility == CLASS)).order_by(Model.id.desc()))).scalars()
            return [self._model_view(m, member.default_model_id) for m in rows]

    def _model_view(self, m: Model, default_id: int | None = None) -> ModelView:
        return ModelView(m.id, m.owner_id, m.name, m.version, m.visibility, m.labels, m.base_model, m.layers_kept,
                         m.layers_base, m.params, m.params_base, m.metrics, m.job_id, m.created_at,
                         m.id == default_id)

    async def _usable_model(self, s, caller: Caller, model_id: int) -> Model:
        m = await s.get(Model, int(model_id)) if _valid_id(model_id) else None
        if m is None or m.guild_id != caller.guild_id or (m.owner_id != caller.user_id and m.visibility != CLASS):
            raise NotFound(f"There is no model {model_id} you can use in this class (yours, or shared with the class).")
        return m

    async def _owned_model(self, s, caller: Caller, model_id: int) -> Model:
        if caller.steers:
            m = await s.get(Model, int(model_id)) if _valid_id(model_id) else None
        else:
            m = await self._usable_model(s, caller, model_id)
        if m is None or m.guild_id != caller.guild_id:
            raise NotFound(f"There is no model {model_id} in this class.")
        if m.owner_id != caller.user_id and not caller.steers:
            raise PermissionDenied(f"Model {m.name} belongs to another student; only they can change it.")
        return m

    async def rename_model(self, caller: Caller, model_id: int, new_name: str) -> ModelView:
        new_name = (new_name or "").strip()
        if not new_name or len(new_name) > MAX_NAME:
            raise InvalidRequest(f"Give the model a name of 1 to {MAX_NAME} characters.")
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            clash = (await s.execute(select(Model.id).where(
                Model.guild_id == m.guild_id, Model.owner_id == m.owner_id, Model.name == new_name,
                Model.version == m.version, Model.id != m.id))).first()
            if clash:
                raise Conflict(f"You already have a model called {new_name} v{m.version}.")
            m.name = new_name
            return self._model_view(m)

    async def share_model(self, caller: Caller, model_id: int, shared: bool = True) -> ModelView:
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            m.visibility = CLASS if shared else PRIVATE
            return self._model_view(m)

    async def set_default_model(self, caller: Caller, model_id: int) -> ModelView:
        async with self.db.transaction() as s:
            m = await self._usable_model(s, caller, model_id)
            member = await self._member(s, caller)
            member.default_model_id = m.id
            return self._model_view(m, m.id)

    async def delete_model(self, caller: Caller, model_id: int) -> ModelView:
        """Delete the model row and its files (the job and its report stay, without a model)."""
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            view, path = self._model_view(m), m.path
            await s.delete(m)
        if self._predictors is not None:
            self._predictors.forget(self.store.path(path))
        await asyncio.to_thread(self.store.remove_tree, path)
        return view

    async def model(self, caller: Caller, model_id: int | None) -> ModelView:
        """A model the caller may use (``None``: their default); refuses as ``predict`` would, without loading it."""
        async with self.db.transaction() as s:
            return self._model_view(await self._model_to_use(s, caller, model_id))

    async def _model_to_use(self, s, caller: Caller, model_id: int | None) -> Model:
        if model_id is None:
            member = await self._member(s, caller)
            if member.default_model_id is None:
                raise NotFound("You have no default model yet: train one with /train, or pick one with /models.")
            model_id = member.default_model_id
        return await self._usable_model(s, caller, model_id)

    async def predict(self, caller: Caller, model_id: int | None, texts: list[str], top_k: int = 3):
        """Classify texts with a model the caller may use (``None``: their default model).

        Loading and inference run in a thread; the event loop never waits on them. Requests for the
        same model that arrive within ``[queue].predict_batch_ms`` share one forward pass."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise InvalidRequest("Give at least one non-empty text to classify.")
        if len(texts) > MAX_PREDICT_TEXTS:
            raise InvalidRequest(f"At most {MAX_PREDICT_TEXTS} texts at once; you gave {len(texts)}.")
        texts = [t[:MAX_PREDICT_CHARS] for t in texts]
        async with self.db.transaction() as s:
            m = await self._model_to_use(s, caller, model_id)
            view, path = self._model_view(m), self.store.path(m.path)

        from trainer.errors import TrainerError

        try:
            return view, await self.batcher.predict((str(path), top_k), texts)
        except (TrainerError, OSError):  # its files are gone or damaged: say so, do not show a traceback
            log.exception("model %s at %s cannot be loaded", view.id, path)
            raise Conflict(f"Model {view.label} cannot be loaded (its files are missing or damaged); "
                           "train it again or ask your instructor.") from None

    def _predict_batch(self, key: tuple[str, int], texts: list[str]):
        """One forward pass for a micro-batch (in a worker thread): load the model if needed, classify."""
        path, top_k = key
        return self.predictors.get(path).predict(texts, top_k=top_k)

    # -- quotas and the queue ----------------------------------------------------------------------
    async def quotas(self, caller: Caller) -> dict:
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            return {k: getattr(cls, k) for k in QUOTA_NAMES} | {"paused": cls.paused}

    async def set_quotas(self, caller: Caller, **values) -> dict:
        if not caller.steers:
            raise PermissionDenied("Only instructors can change the class's quotas.")
        values = {k: v for k, v in values.items() if v is not None}
        for k, v in values.items():
            if k not in QUOTA_NAMES:
                raise InvalidRequest(f"{k} is not a quota; the quotas are {', '.join(QUOTA_NAMES)}")
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidRequest(f"{k} must be a whole number of at least 1, got {v!r}")
        if "max_bytes" in values and values["max_bytes"] > self.settings.data.max_bytes:
            raise InvalidRequest(f"max_bytes cannot exceed the server's limit of {self.settings.data.max_bytes:,} "
                                 "([data].max_bytes in config.toml)")
        if "max_rows" in values and values["max_rows"] > self.settings.data.max_rows:
            raise InvalidRequest(f"max_rows cannot exceed the server's limit of {self.settings.data.max_rows:,} "
                                 "([data].max_rows in config.toml)")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            for k, v in values.items():
                setattr(cls, k, v)
        return await self.quotas(caller)

    async def set_paused(self, caller: Caller, paused: bool) -> dict:
        """Pause or resume the class's queue: running jobs go on, queued ones wait."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can pause or resume the class queue.")
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            cls.paused = paused
        return await self.quotas(caller)

    # -- for the bot: progress messages, notifications, class report, file predictions ------------
    async def set_progress_message(self, job_id: int, channel_id: str, message_id: str) -> None:
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            if job is not None:
                job.channel_id, job.message_id = str(channel_id), str(message_id)

    async def progress_messages(self) -> list[tuple[JobView, str, str]]:
        """Jobs whose progress message still needs edits: (view, channel id, message id)."""
        async with self.db.transaction() as s:
            jobs = list((await s.execute(select(Job).where(Job.message_id.is_not(None)))).scalars())
            views = await self._views(s, jobs)
        return [(v, j.channel_id, j.message_id) for v, j in zip(views, jobs, strict=True)]

    async def clear_progress_message(self, job_id: int) -> None:
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            if job is not None:
                job.message_id = None

    async def job_report(self, job_id: int) -> ReportView | None:
        """The report of a job, for the notifier (no caller: it posts where the job was submitted)."""
        async with self.db.transaction() as s:
            job = await s.get(Job, int(job_id))
            rep = (await s.execute(select(Report).where(Report.job_id == int(job_id)))).scalar_one_or_none()
            if job is None or rep is None:
                return None
            return await self._report_view(s, job, rep)

    async def class_report(self, caller: Caller) -> tuple[list[dict], bytes]:
        """Instructors: per student, jobs by outcome and their best model; and every job as CSV."""
        import csv
        import io

        if not caller.steers:
            raise PermissionDenied("Only instructors can see the class report.")
        views = await self.jobs(caller, everyone=True, limit=100_000)
        students: dict[str, dict] = {}
        for v in sorted(views, key=lambda v: v.id):
            st = students.setdefault(v.owner_id, {"student": v.owner_id, "jobs": 0, "succeeded": 0, "failed": 0,
                                                  "cancelled": 0, "open": 0, "best_macro_f1": None,
                                                  "best_model": None})
            st["jobs"] += 1
            key = v.status if v.status in ("succeeded", "failed", "cancelled") else "open"
            st[key] += 1
            if v.macro_f1 is not None and (st["best_macro_f1"] is None or v.macro_f1 > st["best_macro_f1"]):
                st["best_macro_f1"], st["best_model"] = v.macro_f1, v.name
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["job", "student", "model", "status", "macro_f1", "attempts", "created_at", "started_at",
                    "finished_at", "error"])
        for v in sorted(views, key=lambda v: v.id):
            d = v.to_dict()
            w.writerow([v.id, v.owner_id, csv_cell(v.name), v.status, "" if v.macro_f1 is None else f"{v.macro_f1:.4f}",
                        v.attempts, d["created_at"], d["started_at"] or "", d["finished_at"] or "", csv_cell(v.error or "")])
        ranked = sorted(students.values(), key=lambda s: -(s["best_macro_f1"] or -1))
        return ranked, buf.getvalue().encode("utf-8")

    async def predict_file(self, caller: Caller, model_id: int | None, content: bytes, filename: str,
                           max_rows: int = 2000):
        """Classify every row of an uploaded table; returns (model, CSV bytes with predictions, rows)."""
        import csv
        import io

        from trainer.data import read_table
        from trainer.errors import DataError

        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
        self._check_bytes(cls, len(content))
        staged = self.store.staging_file(content, filename)
        try:
            table = await asyncio.to_thread(read_table, staged, self.settings.data)
        except DataError as exc:
            raise InvalidDataset(exc.problems) from None
        finally:
            staged.unlink(missing_ok=True)
        col = _text_column(table.columns)
        if col is None:
            raise InvalidRequest("No text column found: name one column 'text' (or 'message', 'sentence', '文本').")
        if len(table.rows) > max_rows:
            raise InvalidRequest(f"The file has {len(table.rows):,} rows; at most {max_rows:,} can be classified at once.")
        texts = [str(r.get(col) or "") for r in table.rows]
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if not idx:
            raise InvalidRequest(f"Column '{col}' is empty.")
        view, preds = None, []
        for start in range(0, len(idx), MAX_PREDICT_TEXTS):
            view, part = await self.predict(caller, model_id, [texts[i] for i in idx[start:start + MAX_PREDICT_TEXTS]])
            preds.extend(part)
        by_row = dict(zip(idx, preds, strict=True))
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow([csv_cell(c) for c in [*table.columns, "predicted_label", "confidence"]])
        for i, row in enumerate(table.rows):
            p = by_row.get(i)
            w.writerow([*(csv_cell(row.get(c, "")) for c in table.columns), csv_cell(p.label) if p else "",
                        f"{p.score:.4f}" if p else ""])
        return view, out.getvalue().encode("utf-8"), len(idx)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value) -> str:
    """A cell a spreadsheet will show as text, never run (OWASP, CSV injection): one that starts like a
    formula (= + - @, a tab or a line break, or their full-width forms) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _not_posted(row) -> str | None:
    """Why a given-up outbox row never reached its channel, for the student."""
    if row is None:
        return None
    why = "the bot may not post there" if "Forbidden" in (row.last_error or "") else "the channel is gone"
    return f"the result could not be posted in <#{row.channel_id}> ({why})"


def _spec_params(params: dict) -> dict:
    """A job's parameters as TrainSpec fields: the teacher is stored as a model id and becomes a
    directory only when the job starts (the scheduler resolves it)."""
    return {k: v for k, v in params.items() if k != "teacher_model_id"}


def _valid_id(value) -> bool:
    """A row id the database can hold (a 32-bit integer on PostgreSQL); anything else is simply not found."""
    try:
        return 0 < int(value) < 2**31
    except (TypeError, ValueError):
        return False


def _text_column(columns: list[str]) -> str | None:
    """The column to classify: one with a usual text name, or the only column."""
    from trainer.data import TEXT_NAMES

    for c in columns:
        if c.strip().lower() in TEXT_NAMES:
            return c
    return columns[0] if len(columns) == 1 else None
