"""Experiments: one request that queued several jobs differing in one setting (queued by ``submit`` with a
sweep), seen together: a table of the runs, the Pareto front of quality against speed, and one chart (a
learning curve when the setting is ``train_share``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from core.files import atomic_directory
from storage.models import FAILED, SUCCEEDED, Experiment, Job, Report

from .base import ServiceBase, _valid_id
from .errors import NotFound, PermissionDenied
from .views import Caller

CHART = "sweep.png"
TFIDF, PROBE = "TF-IDF", "frozen base + probe"  # the cheap references every run is scored beside


@dataclass
class ExperimentRun:
    """One job of an experiment: the value it took, and its outcome."""

    job_id: int
    value: int | str
    status: str
    macro_f1: float | None = None
    ms_per_message: float | None = None
    params: int | None = None
    layers: int | None = None
    examples: int | None = None  # trained on (its share of the training split)
    per_class_f1: dict | None = None
    error: str | None = None
    front: bool = False  # on the Pareto front: no other run is both as fast and as good, and better in one

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ExperimentView:
    id: int
    owner_id: str
    name: str
    setting: str
    values: list
    created_at: datetime
    finished_at: datetime | None
    runs: list[ExperimentRun]
    chart_png: Path | None = None  # drawn once the experiment has finished and one run succeeded
    # the cheap references on the runs' test split (every run of a sweep shares it; for a learning curve,
    # the largest share's): {"TF-IDF": macro-F1, "frozen base + probe": macro-F1}
    references: dict[str, float] | None = None

    @property
    def done(self) -> list[ExperimentRun]:
        return [r for r in self.runs if r.status == SUCCEEDED]

    @property
    def is_curve(self) -> bool:
        """A sweep of the share of the training data: a learning curve, not a trade-off of size and speed."""
        return self.setting == "train_share"

    def reading(self) -> str:
        """One line a student can act on: the smallest run within a point of the best (or, for a learning
        curve, whether more data would help), or what went wrong."""
        done = self.done
        if not done:
            return "No run of this experiment finished; the table says why."
        if self.is_curve:
            from trainer.sweep import curve_reading

            return curve_reading([{"share": r.value, "examples": r.examples, "macro_f1": r.macro_f1,
                                   "per_class_f1": r.per_class_f1 or {}} for r in sorted(done, key=lambda r: r.value)])
        best = max(done, key=lambda r: r.macro_f1)
        near = min((r for r in done if r.macro_f1 >= best.macro_f1 - 0.01), key=lambda r: (r.params, r.ms_per_message))
        line = f"Best macro-F1 {best.macro_f1:.3f} with {self.setting}={best.value}."
        if near is not best:
            line += (f" {self.setting}={near.value} comes within a point of it ({near.macro_f1:.3f}) with "
                     f"{near.params / best.params:.0%} of the parameters at {near.ms_per_message:.2f} ms a message.")
        probe = (self.references or {}).get(PROBE)
        if probe is not None and best.macro_f1 < probe:
            line += (f" No run beats the frozen base read by a linear probe ({probe:.3f}): the cut or the training "
                     "lost what the base knew; try more layers, more epochs or method probe.")
        return line

    def references_line(self) -> str:
        """The references on the same split, in one line (empty without them)."""
        refs = self.references or {}
        return " · ".join(f"{k} {v:.3f}" for k, v in refs.items() if v is not None)

    def table(self) -> str:
        """The runs as a fixed-width table (for a code block or a terminal); ◆ marks the Pareto front."""
        from trainer.sweep import params_text

        # the layers kept, unless they are the setting itself; a learning curve's training examples
        extra = "layers" if self.setting != "layers" else None
        extra = "examples" if self.is_curve else extra
        head = (f"{self.setting:>11}  {'macro-F1':>8}  {'ms/msg':>7}  {'params':>7}  " + (f"{extra:>8}  " if extra else "")
                + f"{'job':>5}")
        lines = [head]
        for r in self.runs:
            if r.status == SUCCEEDED:
                lines.append(f"{r.value!s:>11}  {r.macro_f1:>8.3f}  {r.ms_per_message:>7.2f}  {params_text(r.params):>7}  "
                             + (f"{getattr(r, extra):>8}  " if extra else "") + f"{r.job_id:>5}{'  ◆' if r.front else ''}")
            else:
                why = f": {r.error}" if r.error else ""
                lines.append(f"{r.value!s:>11}  {r.status}{why}"[:110] + f"  (job {r.job_id})")
        if self.references_line():
            lines.append(f"same test split: {self.references_line()}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"id": self.id, "owner_id": self.owner_id, "name": self.name, "setting": self.setting,
                "values": self.values, "created_at": self.created_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "runs": [r.to_dict() for r in self.runs], "chart_png": str(self.chart_png) if self.chart_png else None,
                "references": self.references, "reading": self.reading() if self.finished_at else None}


class Experiments(ServiceBase):
    async def experiment(self, caller: Caller, experiment_id: int, chart: bool = True) -> ExperimentView:
        """An experiment of the caller's (or, for instructors, of the class), its chart drawn once it finished
        (``chart=False``: not drawn, a quick read)."""
        async with self.db.transaction() as s:
            exp = await s.get(Experiment, int(experiment_id)) if _valid_id(experiment_id) else None
            if exp is None or exp.guild_id != caller.guild_id and not caller.operator:
                raise NotFound(f"There is no experiment {experiment_id} in this class.")
            if exp.owner_id != caller.user_id and not caller.steers:
                raise PermissionDenied(f"Experiment {experiment_id} is another student's; you can only see your own.")
            view = await self._experiment_view(s, exp)
        return await self._with_chart(view) if chart else view

    async def experiments(self, caller: Caller, everyone: bool = False) -> list[ExperimentView]:
        """The caller's experiments (``everyone``: the class's, for instructors), newest first, without charts."""
        if everyone and not caller.steers:
            raise PermissionDenied("Only instructors can see the whole class's experiments.")
        async with self.db.transaction() as s:
            stmt = select(Experiment).where(Experiment.guild_id == caller.guild_id)
            if not everyone:
                stmt = stmt.where(Experiment.owner_id == caller.user_id)
            exps = list((await s.execute(stmt.order_by(Experiment.id.desc()).limit(100))).scalars())
            return [await self._experiment_view(s, e) for e in exps]

    async def experiment_report(self, experiment_id: int) -> ExperimentView | None:
        """A finished experiment with its chart, for the outbox pump (no caller: it posts where it was asked)."""
        async with self.db.transaction() as s:
            exp = await s.get(Experiment, int(experiment_id))
            if exp is None:
                return None
            view = await self._experiment_view(s, exp)
        return await self._with_chart(view)

    async def _experiment_view(self, s, exp: Experiment) -> ExperimentView:
        from trainer.sweep import pareto_front

        jobs = list((await s.execute(select(Job).where(Job.experiment_id == exp.id).order_by(Job.id))).scalars())
        reports = {r.job_id: r for r in (await s.execute(
            select(Report).where(Report.job_id.in_([j.id for j in jobs])))).scalars()} if jobs else {}
        runs, references = [], None
        for job, value in zip(jobs, exp.values, strict=False):
            rep = reports.get(job.id)
            if job.status == SUCCEEDED and rep is not None:
                m = rep.metrics
                if references is None or exp.setting == "train_share":  # the runs share a split (a curve: the last)
                    references = {TFIDF: m.get("baseline_macro_f1"), PROBE: m.get("probe_macro_f1")}
                report = m.get("report") or {}
                runs.append(ExperimentRun(job.id, value, job.status, m["macro_f1"], m["ms_per_message"], m["params"],
                                          len(m["layers_kept"]), m["split"]["train"],
                                          {lab: report[lab]["f1-score"] for lab in m["labels"] if lab in report}))
            else:
                runs.append(ExperimentRun(job.id, value, job.status, error=job.error if job.status == FAILED else None))
        done = [r for r in runs if r.status == SUCCEEDED]
        if exp.setting != "train_share":  # a learning curve is not a trade-off: no front
            for r, front in zip(done, pareto_front([(r.ms_per_message, r.macro_f1) for r in done]), strict=True):
                r.front = front
        return ExperimentView(exp.id, exp.owner_id, exp.name, exp.setting, list(exp.values), exp.created_at,
                              exp.finished_at, runs, references=references)

    async def _with_chart(self, view: ExperimentView) -> ExperimentView:
        """The view with its chart, drawn on first need into the artefact store (a finished experiment's runs
        do not change, so the file is drawn once; two drawing at once each write whole and rename)."""
        if view.finished_at is None or not view.done:
            return view
        rel = f"reports/experiment-{view.id}"
        path = self.store.path(rel) / CHART
        if not path.is_file():
            try:
                await asyncio.to_thread(self._draw, view, self.store.path(rel))
            except OSError:  # another drawer renamed its copy into place first: that one is as good
                if not path.is_file():
                    raise
        view.chart_png = path
        return view

    @staticmethod
    def _draw(view: ExperimentView, final: Path) -> None:
        from trainer.sweep import plot_sweep

        runs = [r.to_dict() for r in view.done]
        title = f"Experiment {view.id} · {view.name}: {view.setting} = {', '.join(map(str, view.values))}"
        with atomic_directory(final, replace=True) as tmp:
            plot_sweep(runs, view.setting, tmp / CHART, title, view.references)
