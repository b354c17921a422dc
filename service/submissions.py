"""Checking a file and queueing a training job: quotas first, then the file, then the settings; on
any refusal nothing is stored."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, select

from core.errors import SpecError
from core.spec import Sweep, TrainSpec
from storage.models import QUEUED, RUNNING, Classroom, Dataset, Experiment, Job, utcnow
from trainer.hidden import missing_labels

from .assignments import Assignments
from .base import JOB_PARAMS, MAX_NAME
from .compare import Comparisons
from .errors import InvalidDataset, InvalidRequest, QuotaExceeded, RateLimited
from .views import Caller, Submitted


class Submissions(Assignments, Comparisons):
    """Built on Assignments and Comparisons: a submission may name an assignment, or rerun a job it may compare."""

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
        await self._rate_limit(caller, cls, "check")
        self._check_bytes(cls, len(content))
        from trainer.check import check_upload

        with self._staged((content, filename)) as ((staged,), _):
            info = (await self._read(caller, check_upload, self._spec_for(self._train_spec(staged, params), staged, cls),
                                     self.settings.base_models))["info"]
        self._check_rows(cls, info["rows"])
        return info

    async def submit(self, caller: Caller, content: bytes | None, filename: str | None, *, name: str,
                     params: dict | None = None, validation: tuple[bytes, str] | None = None,
                     channel_id: str | None = None, assignment: str | None = None, like: int | None = None,
                     sweep: Sweep | str | None = None) -> Submitted:
        """Queue a training job. Quotas and the file are checked first; on any refusal nothing is stored.

        ``assignment``: submit to that assignment (its deadline, submission limit and labels are checked;
        with no file, its training file is used). ``like``: start from that job's settings (the caller's,
        or one shared with the class); ``params`` given here override them, and with no file the job's
        own file is used again (only the caller's own). ``sweep`` (``layers=1,2,3,6``): an experiment, one
        job per value of that setting, all else equal, counted against the quotas as the jobs they are and
        announced together when the last ends (``Submitted.jobs``, ``Submitted.experiment_id``)."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        unknown = set(params) - set(JOB_PARAMS)
        if unknown:
            raise InvalidRequest(f"Unknown training settings: {', '.join(sorted(unknown))}")
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidRequest(f"Give the model a name of 1 to {MAX_NAME} characters.")
        sweep = self._sweep(sweep, params, assignment, name)
        jobs_asked = len(sweep.values) if sweep else 1
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
            await self._check_job_quotas(s, cls, caller, jobs_asked)
            task = await self._open_assignment_for(s, caller, assignment) if assignment else None
            if like is not None:
                earlier, _ = await self._comparable(s, caller, like)
                params = {k: v for k, v in earlier.params.items() if k in JOB_PARAMS} | params
                if content is None:
                    if earlier.owner_id != caller.user_id:
                        raise InvalidRequest(f"Job {like} is a classmate's: attach your own file to rerun its "
                                             "settings on it.")
                    ds = await s.get(Dataset, earlier.dataset_id)
                    if ds.removed_at is not None:
                        raise InvalidRequest(
                            f"The file job {like} trained on ({ds.name}) is no longer stored: uploads nothing uses are "
                            f"kept {self.settings.storage.keep_uploads_days:g} days. Attach it again to rerun "
                            "these settings on it.")
                    content, filename = await asyncio.to_thread(self.store.path(ds.path).read_bytes), ds.name
        if content is None and task is not None:
            content, filename = await self.assignment_training_file(caller, assignment)
        if content is None:
            raise InvalidRequest("Attach a dataset to train on (or name an assignment that has a training file, "
                                 "or rerun one of your jobs with like).")
        self._check_bytes(cls, len(content))
        if validation is not None:
            self._check_bytes(cls, len(validation[0]))
        await self._check_disk(cls, len(content) + (len(validation[0]) if validation is not None else 0))
        params["max_epochs"] = cls.max_epochs  # the ceiling when the epochs are left to early stopping
        teacher_labels = None
        if params.get("teacher_model_id") is not None:
            params.setdefault("method", "distill")  # a teacher means distillation (_check_spec refuses another)
            async with self.db.transaction() as s:
                teacher = await self._usable_model(s, caller, params["teacher_model_id"])
                params["teacher_model_id"], teacher_labels = teacher.id, list(teacher.labels)
        # the one spec per job (one, or one per value of a sweep): the file's path is set once it is staged
        variants = [params] if not sweep else [
            {k: v for k, v in params.items() if not (sweep.setting == "layers" and k == "layer_list")}  # a rerun's
            | {sweep.setting: value} for value in sweep.values]  # explicit layers would make every job the same
        specs = [self._train_spec("upload", v) for v in variants]
        for spec in specs:
            self._check_spec(cls, spec, teacher_labels is not None)
        spec = specs[0]

        # a /train whose file is refused was a /check in all but name: it counts towards checks_per_hour
        await self._rate_limit(caller, cls, "check", count=False)
        with self._staged((content, filename), validation) as ((staged, staged_val), created):
            from trainer.check import check_upload

            try:
                read = await self._read(caller, check_upload, self._spec_for(spec, staged, cls),
                                        self.settings.base_models, str(staged_val) if staged_val else None)
            except InvalidDataset:
                with contextlib.suppress(RateLimited):  # the problems are the answer; the count is for next time
                    await self._rate_limit(caller, cls, "check")
                raise
            info, val_info = read["info"], read["validation"]
            for one in specs:
                await asyncio.to_thread(self._check_layers, caller, one)
            self._check_rows(cls, info["rows"])
            if task is not None:
                missing = missing_labels(task.labels, info["labels"])
                if missing:
                    raise InvalidRequest(
                        f"Your file has no examples of {', '.join(missing)}, which assignment '{task.name}' is "
                        f"tested on (its labels: {', '.join(task.labels)}); a model can only predict labels it "
                        "was trained on. Add examples of them and submit again.")
            if teacher_labels is not None:
                from trainer.distillation import teacher_label_mismatch

                mismatch = teacher_label_mismatch(teacher_labels, list(info["labels"]))
                if mismatch:
                    raise InvalidRequest(mismatch)
            async with self.db.transaction() as s:
                cls = await self._class(s, caller.guild_id)
                await self._member(s, caller, lock=True)
                await self._check_job_quotas(s, cls, caller, jobs_asked)  # again: another submission may have landed
                if task is not None:  # again, under the member lock: deadline, closing, submission count
                    task = await self._open_assignment_for(s, caller, task.name)
                ds = await self._dataset(s, caller, staged, filename, info, created)
                val = await self._dataset(s, caller, staged_val, validation[1], val_info, created) if validation else None
                experiment = None
                if sweep:
                    experiment = Experiment(guild_id=caller.guild_id, owner_id=caller.user_id, name=name,
                                            setting=sweep.setting, values=list(sweep.values), channel_id=channel_id)
                    s.add(experiment)
                    await s.flush()
                jobs = [Job(guild_id=caller.guild_id, owner_id=caller.user_id, dataset_id=ds.id,
                            validation_dataset_id=val.id if val else None,
                            name=f"{name} {sweep.label(value)}" if sweep else name, params=job_params,
                            status=QUEUED, priority=self.settings.queue.instructor_priority if caller.steers else 0,
                            max_attempts=self.settings.queue.max_attempts, channel_id=channel_id, attempts=0,
                            cancel_requested=False, assignment_id=task.id if task else None,
                            experiment_id=experiment.id if experiment else None)
                        for job_params, value in zip(variants, sweep.values if sweep else [None], strict=True)]
                s.add_all(jobs)
                await s.flush()
                job_ids, ds_id = [j.id for j in jobs], ds.id
                experiment_id = experiment.id if experiment else None
        views = [await self.job(caller, i) for i in job_ids]
        return Submitted(views[0], ds_id, info["rows"], info["labels"], info["warnings"], jobs=views,
                         experiment_id=experiment_id,
                         assignment=await self.assignment(caller, task.name) if task else None)

    def _sweep(self, sweep: Sweep | str | None, params: dict, assignment: str | None, name: str) -> Sweep | None:
        """The experiment asked for, checked against the rest of the request (InvalidRequest otherwise)."""
        if sweep is None:
            return None
        try:
            sweep = Sweep.parse(sweep) if isinstance(sweep, str) else Sweep.of(sweep.setting, list(sweep.values))
        except SpecError as exc:
            raise InvalidRequest(f"That experiment cannot run: {exc}.") from None
        if assignment:
            raise InvalidRequest("An experiment is for learning what works; submit to an assignment one job at a "
                                 "time (/train with assignment).")
        if sweep.setting in params:
            raise InvalidRequest(f"The experiment varies {sweep.setting}; leave the {sweep.setting} option out.")
        if sweep.setting == "layers" and params.get("layer_list"):
            raise InvalidRequest("An explicit list of layers keeps the same layers in every job; leave it out to "
                                 "sweep the number of layers.")
        longest = max(len(f"{name} {sweep.label(v)}") for v in sweep.values)
        if longest > MAX_NAME:
            raise InvalidRequest(f"With the sweep's label the job names reach {longest} characters; give the "
                                 f"experiment a name of at most {MAX_NAME - (longest - len(name))}.")
        return sweep

    def _check_spec(self, cls: Classroom, spec: TrainSpec, has_teacher: bool) -> None:
        """What a job's spec must satisfy beyond its own ranges: the class's epochs, the method's options."""
        if spec.epochs is not None and spec.epochs > cls.max_epochs:
            raise QuotaExceeded("max_epochs", cls.max_epochs, f"{spec.epochs} epochs is more than this class allows")
        if spec.augment and spec.method != "distill":
            raise InvalidRequest("Augmented copies are labelled by a teacher, so augment is for the distill "
                                 "method; choose method distill, or leave augment out.")
        if has_teacher and spec.method != "distill":
            raise InvalidRequest(f"A teacher is for the distill method, not {spec.method}; choose method "
                                 "distill, or leave the teacher out.")

    def _check_bytes(self, cls: Classroom, n: int) -> None:
        if n > cls.max_bytes:
            raise QuotaExceeded("max_bytes", cls.max_bytes, f"The file is {n:,} bytes")

    async def _check_disk(self, cls: Classroom, adding: int) -> None:
        """The class's disk quota: its stored uploads and models, and what this submission would add."""
        from storage.files import size_of
        from storage.retention import class_storage

        async with self.db.transaction() as s:
            uploads, models = await class_storage(s, cls.guild_id)
        used = uploads + await asyncio.to_thread(lambda: sum(size_of(self.store.path(m)) for m in models))
        if used + adding > cls.max_disk_mb * 1_000_000:
            raise QuotaExceeded("max_disk_mb", cls.max_disk_mb,
                                f"The class already stores {used / 1e6:,.1f} MB of uploads and models, and this "
                                f"submission would add {adding / 1e6:,.1f} MB; delete models you no longer need "
                                "(/models delete)")

    def _check_rows(self, cls: Classroom, rows: int) -> None:
        if rows > cls.max_rows:
            raise QuotaExceeded("max_rows", cls.max_rows, f"The file has {rows:,} examples")

    async def _check_job_quotas(self, s, cls: Classroom, caller: Caller, adding: int = 1) -> None:
        """Room for ``adding`` more jobs (an experiment's jobs count as the jobs they are)."""
        asking = f"; this experiment queues {adding}" if adding > 1 else ""
        open_jobs = (await s.execute(select(func.count()).select_from(Job).where(
            Job.guild_id == caller.guild_id, Job.owner_id == caller.user_id,
            Job.status.in_((QUEUED, RUNNING))))).scalar_one()
        if adding > cls.max_queued_per_student:
            raise QuotaExceeded("max_queued_per_student", cls.max_queued_per_student,
                                f"This experiment queues {adding} jobs, more than a student may have queued or "
                                "running at once; sweep fewer values")
        if open_jobs + adding > cls.max_queued_per_student:
            raise QuotaExceeded("max_queued_per_student", cls.max_queued_per_student,
                                f"You already have {open_jobs} job(s) queued or running{asking}; wait for one to "
                                "finish or cancel one")
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        today = (await s.execute(select(func.count()).select_from(Job).where(
            Job.guild_id == caller.guild_id, Job.owner_id == caller.user_id, Job.created_at >= day))).scalar_one()
        if today + adding > cls.max_jobs_per_day:
            raise QuotaExceeded("max_jobs_per_day", cls.max_jobs_per_day,
                                f"You have submitted {today} job(s) today (UTC){asking}; try again tomorrow")

    def _check_layers(self, caller: Caller, spec: TrainSpec) -> None:
        """The base model and the layer choice (the server's own files, not the upload), in a worker thread."""
        from trainer.errors import TrainerError
        from trainer.models import check_weights, layer_count, resolve_base
        from trainer.pruning import select_layers

        try:
            base = resolve_base(spec.base, self.settings.base_models)
            if base.local:
                check_weights(base.source, base.name)
            select_layers(layer_count(base), spec.layers, spec.strategy, spec.layer_list)
        except TrainerError as exc:  # the server's paths are for the operator, not for students
            raise InvalidRequest(str(exc) if caller.operator else exc.for_students()) from None
