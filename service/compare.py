"""Comparing two finished runs side by side: the settings that differ, scores and per-class F1 with the
change (b − a), size and speed, and the hidden-set scores when both were submitted to one assignment."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from storage.models import CLASS, Assignment, Job, Model, Report, Score

from .base import ServiceBase, _valid_id
from .errors import Conflict, NotFound, PermissionDenied
from .views import Caller

NOT_SETTINGS = ("data_path", "out_dir", "validation_path", "threads", "device", "limits", "teacher")


@dataclass
class Comparison:
    a: dict  # job id, name, owner, model
    b: dict
    settings: list[tuple[str, object, object]]  # only those that differ
    scores: list[tuple[str, float | None, float | None]]  # (name, a, b); change = b - a
    per_class: list[tuple[str, float | None, float | None]]
    same_test_split: bool
    hidden: tuple[str, float, float] | None  # both scored on one assignment: (its name, a, b), public part

    def to_dict(self) -> dict:
        def rows(items):
            return [{"name": n, "a": x, "b": y, "change": _change(x, y)} for n, x, y in items]

        return {"a": self.a, "b": self.b, "settings": [{"name": n, "a": x, "b": y} for n, x, y in self.settings],
                "scores": rows(self.scores), "per_class_f1": rows(self.per_class),
                "same_test_split": self.same_test_split,
                "hidden": {"assignment": self.hidden[0], "part": "public", "a": self.hidden[1], "b": self.hidden[2],
                           "change": _change(self.hidden[1], self.hidden[2])} if self.hidden else None}


def _change(a, b):
    return round(b - a, 6) if isinstance(a, int | float) and isinstance(b, int | float) else None


class Comparisons(ServiceBase):
    async def compare(self, caller: Caller, job_a: int, job_b: int) -> Comparison:
        """Two finished jobs side by side: settings that differ, scores and per-class F1 with the change
        (b − a), size and speed. Each job must be the caller's, shared with the class, or (instructors) any."""
        async with self.db.transaction() as s:
            (ja, ra), (jb, rb) = [await self._comparable(s, caller, j) for j in (job_a, job_b)]
            sa_, sb_ = [(await s.execute(select(Score).where(Score.job_id == j.id))).scalar_one_or_none()
                        for j in (ja, jb)]
            hidden = None
            if sa_ and sb_ and sa_.assignment_id == sb_.assignment_id:
                a = await s.get(Assignment, sa_.assignment_id)
                hidden = (a.name, sa_.macro_f1, sb_.macro_f1)
        ma, mb = ra.metrics, rb.metrics
        spec_a, spec_b = _settings(ma), _settings(mb)
        settings = [(k, spec_a.get(k), spec_b.get(k)) for k in sorted(set(spec_a) | set(spec_b))
                    if spec_a.get(k) != spec_b.get(k)]
        scores = [(k, ma.get(k), mb.get(k)) for k in
                  ("macro_f1", "accuracy", "baseline_macro_f1", "params", "size_bytes", "ms_per_message",
                   "train_seconds")]
        scores.insert(3, ("layers", len(ma["layers_kept"]), len(mb["layers_kept"])))
        labels = list(ma["labels"]) + [lab for lab in mb["labels"] if lab not in ma["labels"]]
        per_class = [(lab, _f1(ma, lab), _f1(mb, lab)) for lab in labels]
        same_split = (spec_a.get("data") == spec_b.get("data") and spec_a.get("seed") == spec_b.get("seed")
                      and spec_a.get("data") is not None)
        return Comparison(_who(ja, ra), _who(jb, rb), settings, scores, per_class, same_split, hidden)

    async def _comparable(self, s, caller: Caller, job_id: int) -> tuple[Job, Report]:
        """A finished job the caller may compare or rerun: theirs, one whose model is shared with the
        class, or (instructors) any of the class's."""
        job = await s.get(Job, int(job_id)) if _valid_id(job_id) else None
        if job is None or job.guild_id != caller.guild_id and not caller.operator:
            raise NotFound(f"There is no job {job_id} in this class.")
        if job.owner_id != caller.user_id and not caller.steers:
            shared = (await s.execute(select(Model.id).where(Model.job_id == job.id, Model.visibility == CLASS)
                                      )).first()
            if shared is None:
                raise PermissionDenied(f"Job {job_id} is another student's and its model is not shared with the "
                                       "class; you can compare your own jobs and shared ones.")
        rep = (await s.execute(select(Report).where(Report.job_id == job.id))).scalar_one_or_none()
        if rep is None:
            raise Conflict(f"Job {job_id} has no results to compare ({job.status}).")
        return job, rep


def _settings(metrics: dict) -> dict:
    """A run's training settings as compared: its spec without host details, plus what it ran on."""
    spec = {k: v for k, v in (metrics.get("spec") or {}).items() if k not in NOT_SETTINGS}
    prov = metrics.get("provenance") or {}
    spec["data"] = prov.get("data_sha256")
    spec["base_sha256"] = prov.get("base_sha256")
    if metrics.get("teacher"):  # a given teacher by its content; one trained in the job by how it was made
        spec["teacher"] = prov.get("teacher_sha256") or metrics["teacher"]["source"]
    return spec


def _f1(metrics: dict, label: str) -> float | None:
    row = metrics.get("report", {}).get(label)
    return round(row["f1-score"], 4) if row else None


def _who(job: Job, rep: Report) -> dict:
    return {"job_id": job.id, "name": job.name, "owner_id": job.owner_id, "model_id": rep.model_id}
