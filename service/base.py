"""What every use case shares: the service's access to the database, the artefact store, classes, members,
jobs and models (who is asking and what callers get back are in ``views``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from core.settings import Settings
from core.spec import TrainSpec
from storage import queue as q
from storage.db import Database
from storage.files import ArtefactStore, sha256_file
from storage.models import (
    CLASS,
    FINISHED,
    INSTRUCTOR,
    INT_MAX,
    STUDENT,
    SUCCEEDED,
    Assignment,
    Classroom,
    Dataset,
    Job,
    Member,
    Model,
    Report,
    Score,
    utcnow,
)
from storage.queue import insert_if_absent

from .errors import (
    Conflict,
    InvalidDataset,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from .microbatch import MicroBatcher
from .ratelimit import RateLimits
from .sandbox import Door
from .views import Caller, JobView, ModelView, ReportView, Standing

log = logging.getLogger("tinytutor.service")

# Settings a student may choose per job (the rest come from config.toml).
JOB_PARAMS = ("layers", "layer_list", "strategy", "method", "epochs", "lr", "max_length", "batch_size",
              "base", "text_column", "label_column", "seed", "augment", "teacher_model_id", "train_share")
QUOTA_NAMES = ("max_queued_per_student", "max_running_per_student", "max_jobs_per_day", "max_rows", "max_bytes",
               "max_epochs", "checks_per_hour", "predict_files_per_hour", "predictions_per_minute", "max_disk_mb")
MAX_NAME = 100
MAX_PREDICT_TEXTS = 500
MAX_PREDICT_CHARS = 4000


def board_key(score: Score, part: str = "public"):
    """A board's order (see service.boards): the ``part``'s macro-F1 as shown, then smaller, faster, earlier."""
    f1 = score.macro_f1 if part == "public" else score.private_macro_f1
    return (-round(f1, 3), score.params, score.ms_per_message, score.submitted_at, score.job_id)



class ServiceBase:
    def __init__(self, db: Database, settings: Settings, predictors=None, slots: int | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.db, self.settings = db, settings
        self.clock = clock  # what time it is (UTC), for sign-in links and sessions; tests pass their own
        self.store = ArtefactStore(settings.storage.data_dir)
        self._predictors = predictors  # built on the first prediction: a submission never imports torch
        self.batcher = MicroBatcher(self._predict_batch, settings.queue.predict_batch_ms / 1000)
        self.slots = slots or max(1, settings.queue.cpu_slots)
        from trainer.sandbox import Limits

        self.door = Door(Limits.of(settings.sandbox), settings.sandbox.at_once)  # every upload is parsed through it
        self._reading: dict[tuple[str, str], asyncio.Lock] = {}  # (class, student) -> their turn at the door (one
        # small lock per student who ever uploaded: kept, so no waiter is ever left holding a forgotten one)
        self.rates = RateLimits()  # per-student rate limits (service.ratelimit)

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
                                                      created_at=utcnow(), **self.settings.quotas.model_dump()))
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
        m.role, m.role_checked_at = role, utcnow()
        if caller.name:
            m.display_name = caller.name
        return m

    async def member_names(self, caller: Caller) -> dict[str, str]:
        """Instructors: the class's members' display names by user id (as Discord last showed them)."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can list the class's members.")
        async with self.db.transaction() as s:
            rows = (await s.execute(select(Member.user_id, Member.display_name)
                                    .where(Member.guild_id == caller.guild_id))).all()
        return {user: name or user for user, name in rows}

    async def _visible_job(self, s, caller: Caller, job_id: int) -> Job:
        job = await s.get(Job, int(job_id)) if _valid_id(job_id) else None
        if job is None or job.guild_id != caller.guild_id and not caller.operator:
            raise NotFound(f"There is no job {job_id} in this class.")
        if job.owner_id != caller.user_id and not caller.steers:
            raise PermissionDenied(f"Job {job_id} belongs to another student; you can only see your own jobs.")
        return job

    async def _views(self, s, jobs: list[Job]) -> list[JobView]:
        from jobs.eta import standings

        where = await standings(s, jobs, self.slots)
        models = {}
        done = [j.id for j in jobs if j.status == SUCCEEDED]
        if done:
            for m in (await s.execute(select(Model).where(Model.job_id.in_(done)))).scalars():
                models[m.job_id] = m
        gone = await q.undelivered(s, [j.id for j in jobs if j.status in FINISHED])
        out = []
        for j in jobs:
            m = models.get(j.id)
            out.append(JobView(j.id, j.owner_id, j.name, j.status, where[j.id].position, where[j.id].eta_seconds,
                               j.progress, j.attempts, j.priority, j.error, j.created_at, j.started_at,
                               j.finished_at, m.id if m else None, m.metrics.get("macro_f1") if m else None,
                               _not_posted(gone.get(j.id))))
        return out

    async def _report_view(self, s, job: Job, rep: Report) -> ReportView:
        model = await s.get(Model, rep.model_id) if rep.model_id else None
        gone = (await q.undelivered(s, [job.id])).get(job.id)
        return ReportView(job.id, job.owner_id, job.name, rep.model_id, rep.metrics, rep.report_text,
                          self.store.path(rep.confusion_png), self.store.path(rep.curve_png),
                          model.version if model else None, _not_posted(gone), await self._standing(s, job))

    async def _standing(self, s, job: Job) -> Standing | None:
        """Where a submission stands on the public board (the public part of the hidden set), for its owner's
        report: what every student may see before the reveal."""
        if job.assignment_id is None:
            return None
        score = (await s.execute(select(Score).where(Score.job_id == job.id))).scalar_one_or_none()
        a = await s.get(Assignment, job.assignment_id)
        if score is None or a is None:
            return None
        scores = sorted((await s.execute(select(Score).where(Score.assignment_id == a.id))).scalars(), key=board_key)
        bests: dict[str, Score] = {}
        for sc in scores:
            bests.setdefault(sc.owner_id, sc)
        others = [b for owner, b in bests.items() if owner != job.owner_id]
        rank = 1 + sum(board_key(b) < board_key(score) for b in others)
        return Standing(a.name, score.macro_f1, score.accuracy, score.per_class_f1, rank, len(others) + 1,
                        bests[job.owner_id].job_id == job.id)


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

    async def _model_to_use(self, s, caller: Caller, model_id: int | None) -> Model:
        if model_id is None:
            member = await self._member(s, caller)
            if member.default_model_id is None:
                raise NotFound("You have no default model yet: train one with /train, or pick one with /models.")
            model_id = member.default_model_id
        return await self._usable_model(s, caller, model_id)

    async def _read(self, caller: Caller, func, *args):
        """``func(*args)``, a reader of uploaded bytes in the trainer, through the sandbox (``self.door``),
        one file at a time per student: a student's next upload waits for the one being read, so one
        student holds at most one of the door's readers, whatever they send. DataError becomes
        InvalidDataset, TrainerError InvalidRequest."""
        from trainer.errors import DataError, TrainerError

        key = (str(caller.guild_id), str(caller.user_id))
        lock = self._reading.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self.door.run(func, *args)
        except DataError as exc:
            raise InvalidDataset(exc.problems) from None
        except TrainerError as exc:
            raise InvalidRequest(str(exc) if caller.operator else exc.for_students()) from None

    async def _rate_limit(self, caller: Caller, cls: Classroom, action: str, *, count: bool = True) -> None:
        """``RateLimits.take`` for a student; instructors and the operator have no rate limits."""
        if not caller.steers:
            await self.rates.take(action, caller.guild_id, caller.user_id, cls, count=count)

    def _limits_for(self, cls: Classroom) -> dict:
        """The [data] limits a file of this class is read under: the class's byte quota where it is lower
        (a workbook may expand only so far per byte a class allows)."""
        from dataclasses import replace

        return asdict(replace(self.settings.data, max_bytes=min(self.settings.data.max_bytes, cls.max_bytes)))

    def _train_spec(self, path: str | Path, params: dict) -> TrainSpec:
        """A job's or a check's parameters over the configured defaults; InvalidRequest naming a setting that
        cannot work."""
        from core.errors import SpecError

        try:
            return self.settings.train_spec(str(path), **_spec_params(params))
        except SpecError as exc:
            raise InvalidRequest(f"That training setting cannot work: {exc}") from None

    def _spec_for(self, spec: TrainSpec, path: Path, cls: Classroom) -> dict:
        """The spec a staged file at ``path`` is checked with, under the class's limits, as JSON for the sandbox."""
        return spec.to_dict() | {"data_path": str(path), "limits": self._limits_for(cls)}

    @contextlib.contextmanager
    def _staged(self, *uploads: tuple[bytes, str] | None):
        """Uploads written to the staging area to be checked: yields their paths (None for an upload not
        given) and a list that ``_dataset`` fills with the files it moves into place. On any error those
        are removed again (their transaction did not commit); the staged copies always are. So nothing
        of a refused upload stays behind."""
        paths: list[Path | None] = []
        created: list[Path] = []
        try:
            for upload in uploads:
                try:
                    paths.append(self.store.staging_file(*upload) if upload else None)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    log.error("the data directory %s is full: %s", self.store.root, exc)
                    raise Conflict("The server's disk is full, so your file could not be read; nothing was "
                                   "stored. Tell your instructor, and try again later.") from None
            yield paths, created
        except BaseException:
            for p in created:
                p.unlink(missing_ok=True)
            raise
        finally:
            for p in paths:
                if p is not None:
                    p.unlink(missing_ok=True)

    async def _dataset(self, s, caller: Caller, staged: Path, filename: str, info: dict, created: list[Path]) -> Dataset:
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
        return 0 < int(value) <= INT_MAX
    except (TypeError, ValueError):
        return False
