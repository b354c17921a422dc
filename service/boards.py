"""An assignment's boards: what each caller is shown of them, which submissions count, the exports.

Until the reveal a student is shown the public board only (each student's best submission on the
public part of the hidden set: model names and numbers, their own rows marked); no private number
reaches them through any answer built here. Instructors also get the private board, every
submission with both parts side by side, the shake-up between the boards, and the CSV exports
(every submission; grades by a rule). After the reveal everyone is shown the private board first.

The private board counts each student's final picks (up to ``max_picks``; without a pick, their best
``max_picks`` submissions on the public board, as on Kaggle: ``counted_scores``) and ranks the best of
them on the private part. Ranking on either board (``service.base.board_key``): macro-F1 as shown
(three decimals), then fewer parameters, then fewer ms per message, then the earlier submission.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from storage.models import (
    CANCELLED,
    FAILED,
    Assignment,
    Dataset,
    Job,
    Score,
    utcnow,
)

from .base import ServiceBase, board_key
from .errors import NotFound, PermissionDenied
from .views import Caller, csv_cell


@dataclass
class AssignmentView:
    id: int
    name: str
    description: str
    labels: list[str]
    test_rows: int
    train_rows: int | None  # the training file students may use, if there is one
    deadline: datetime | None
    max_submissions: int | None  # per student, in all
    closed_at: datetime | None
    created_at: datetime
    baseline_macro_f1: float | None  # TF-IDF trained on the training file, on the public part of the hidden set
    public_share: float | None  # of the hidden set (None: set before the split existed; the whole set is public)
    daily_cap: int | None  # per student per UTC day
    max_picks: int
    revealed_at: datetime | None
    submissions: int = 0  # the caller's submissions that count (queued, running or succeeded)
    submissions_today: int = 0  # of those, queued since 00:00 UTC today
    picks: list[int] = field(default_factory=list)  # the caller's final picks (job ids)
    warnings: list[str] | None = None  # at creation: what the instructor should know about the files
    now: datetime | None = None  # when this view was made (the limits' "today")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None and (self.deadline is None or self.deadline > (self.now or utcnow()))

    @property
    def revealed(self) -> bool:
        return self.revealed_at is not None

    @property
    def submissions_left(self) -> int | None:
        return None if self.max_submissions is None else max(0, self.max_submissions - self.submissions)

    @property
    def left_today(self) -> int | None:
        return None if self.daily_cap is None else max(0, self.daily_cap - self.submissions_today)

    @property
    def limits(self) -> str:
        """The caller's submissions against the caps: "2 of 3 today, 7 of 20 in all; the next one tomorrow
        at 00:00 UTC"."""
        parts = []
        if self.daily_cap is not None:
            parts.append(f"{self.submissions_today} of {self.daily_cap} today")
        if self.max_submissions is not None:
            parts.append(f"{self.submissions} of {self.max_submissions} in all")
        if not parts:
            return f"{self.submissions} submitted; no limit on submissions"
        text = ", ".join(parts)
        if not self.is_open:
            return f"{text}; it takes no more submissions"
        if self.submissions_left == 0:
            return f"{text}; none left"
        if self.left_today == 0:
            tomorrow = next_day(self.now or utcnow())
            if self.deadline is not None and self.deadline <= tomorrow:
                return f"{text}; none left before the deadline"
            return f"{text}; the next one tomorrow at 00:00 UTC"
        left = min(x for x in (self.submissions_left, self.left_today) if x is not None)
        return f"{text}; {left} more {'today' if self.left_today == left else 'in all'}"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "now"}
        for k in ("deadline", "closed_at", "created_at", "revealed_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d | {"open": self.is_open, "revealed": self.revealed, "submissions_left": self.submissions_left,
                    "left_today": self.left_today, "limits": self.limits}


@dataclass
class BoardRow:
    rank: int  # on its board, among students' best submissions (0 in the list of all submissions)
    model_name: str
    macro_f1: float  # on the board's part of the hidden set
    accuracy: float
    params: int
    layers: int
    ms_per_message: float
    baseline_macro_f1: float  # TF-IDF on the student's own training split, on the board's part
    submitted_at: datetime
    mine: bool  # the caller's own submission
    owner_id: str | None  # None when a student looks at another student's row
    job_id: int | None  # likewise
    per_class_f1: dict | None  # likewise
    picked: bool | None = None  # a final pick (the owner and instructors only)
    counted: bool | None = None  # counts on the private board (the owner and instructors only)
    private_macro_f1: float | None = None  # instructors' list of all submissions: both parts side by side
    probe_macro_f1: float | None = None  # the frozen base read by this run's probe, on the board's part

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["submitted_at"] = self.submitted_at.isoformat()
        return d


@dataclass
class Move:
    """One student between the boards: where they stood on the public board and where on the private one."""

    owner_id: str
    public_rank: int
    private_rank: int
    public_macro_f1: float
    private_macro_f1: float

    @property
    def change(self) -> int:  # places gained (negative: lost)
        return self.public_rank - self.private_rank

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"change": self.change}


@dataclass
class Leaderboard:
    assignment: AssignmentView
    board: str  # "public" or "private": the board this caller is shown first (private once revealed)
    public: list[BoardRow]  # one row per student: their best submission on the public part, ranked
    private: list[BoardRow] | None  # their best counted submission on the private part (None: not yet, for students)
    everything: list[BoardRow] | None  # instructors: every scored submission, ranked on the public part
    shake_up: list[Move] | None  # instructors: public place -> private place, biggest moves first
    references: dict[str, float | None]  # the TF-IDF baseline's macro-F1 on each part shown
    reference_source: str
    # the strongest cheap reference: the frozen base read by a linear probe trained on a student's own
    # training split (the best of them), on each part shown; None where no run had a probe
    probes: dict[str, float | None] = field(default_factory=dict)

    @property
    def best(self) -> list[BoardRow]:
        """The board shown first."""
        return self.private if self.board == "private" else self.public

    @property
    def reference(self) -> float | None:
        return self.references.get(self.board)

    def reference_lines(self, part: str | None = None) -> list[tuple[str, float]]:
        """The board's reference lines on ``part`` (default: the board shown), strongest first."""
        part = part or self.board
        lines = [("TF-IDF baseline", self.references.get(part)), ("frozen base + probe", self.probes.get(part))]
        return sorted(((name, v) for name, v in lines if v is not None), key=lambda x: -x[1])

    def with_references(self, rows: list[BoardRow], part: str | None = None) -> list[BoardRow | tuple[str, float]]:
        """``rows`` with the reference lines of ``part`` placed among them (each above the first row it beats,
        the rest after the last): what every renderer of a board draws. A reference line is a (name, value)."""
        refs, out = self.reference_lines(part), []
        for r in rows:
            while refs and r.macro_f1 < refs[0][1]:
                out.append(refs.pop(0))
            out.append(r)
        return out + refs if rows else out

    def to_dict(self) -> dict:
        rows = lambda items: [r.to_dict() for r in items] if items is not None else None  # noqa: E731
        return {"assignment": self.assignment.to_dict(), "board": self.board, "best": rows(self.best),
                "public": rows(self.public), "private": rows(self.private), "all": rows(self.everything),
                "shake_up": [m.to_dict() for m in self.shake_up] if self.shake_up is not None else None,
                "baseline_macro_f1": self.reference, "baselines": self.references,
                "baseline_source": self.reference_source, "frozen_probes": self.probes}


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(now: datetime) -> datetime:
    return start_of_day(now) + timedelta(days=1)


def counted_scores(scores: list[Score], max_picks: int) -> set[int]:
    """The score ids that count on the private board: each student's picks, or without any, their best
    ``max_picks`` on the public board."""
    by_owner: dict[str, list[Score]] = {}
    for sc in sorted(scores, key=board_key):
        by_owner.setdefault(sc.owner_id, []).append(sc)
    counted = set()
    for mine in by_owner.values():
        picked = [sc for sc in mine if sc.picked_at is not None]
        counted |= {sc.id for sc in (picked or mine[:max_picks])}
    return counted


class Boards(ServiceBase):
    """The boards of a class's assignments, as each caller may see them."""

    async def my_submissions(self, caller: Caller, name: str) -> list[BoardRow]:
        """The caller's scored submissions to an assignment, best public first, with the public part's
        numbers and whether each is picked and counted (what a student chooses their picks from)."""
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            scores = list((await s.execute(select(Score).where(Score.assignment_id == a.id,
                                                               Score.owner_id == caller.user_id))).scalars())
        counted = counted_scores(scores, a.max_picks)
        return [self._board_row(caller, sc, 0, "public", counted) for sc in sorted(scores, key=board_key)]

    # -- the boards ------------------------------------------------------------------------------------
    async def leaderboard(self, caller: Caller, name: str) -> Leaderboard:
        """The boards as ``caller`` may see them (see the module docstring)."""
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            scores = list((await s.execute(select(Score).where(Score.assignment_id == a.id))).scalars())
            view = await self._assignment_view(s, caller, a)
        return self._boards(caller, a, view, scores)

    def _boards(self, caller: Caller, a: Assignment, view: AssignmentView, scores: list[Score]) -> Leaderboard:
        sees_private = caller.steers or a.revealed_at is not None
        by_public = sorted(scores, key=board_key)
        counted = counted_scores(scores, a.max_picks)
        public = self._ranked(caller, by_public, "public", counted)
        private = (self._ranked(caller, sorted((sc for sc in scores if sc.id in counted),
                                               key=lambda sc: board_key(sc, "private")), "private", counted)
                   if sees_private else None)
        everything = shake_up = None
        if caller.steers:
            everything = [self._board_row(caller, sc, 0, "public", counted) for sc in by_public]
            for row, sc in zip(everything, by_public, strict=True):
                row.private_macro_f1 = sc.private_macro_f1
            places = {r.owner_id: r for r in private}
            shake_up = sorted((Move(r.owner_id, r.rank, places[r.owner_id].rank, r.macro_f1,
                                    places[r.owner_id].macro_f1) for r in public if r.owner_id in places),
                              key=lambda m: (-abs(m.change), m.private_rank))
        parts = ("public", "private") if sees_private else ("public",)
        references = {part: self._reference(a, scores, part) for part in parts}
        probes = {part: max((f for f in (sc.probe_macro_f1 if part == "public" else sc.private_probe_macro_f1
                                         for sc in scores) if f is not None), default=None) for part in parts}
        if a.baseline is not None:
            source = "TF-IDF baseline trained on the assignment's training file"
        elif scores:
            source = "best TF-IDF baseline trained on a student's own training split"
        else:
            source = "no submissions yet"
        return Leaderboard(view, "private" if a.revealed_at is not None else "public", public, private, everything,
                           shake_up, references, source, probes)

    def _ranked(self, caller: Caller, ordered: list[Score], part: str, counted: set[int]) -> list[BoardRow]:
        """Each student's first submission in ``ordered`` (only counted ones on the private board), ranked."""
        best, seen = [], set()
        for sc in ordered:
            if sc.owner_id not in seen:
                seen.add(sc.owner_id)
                best.append(self._board_row(caller, sc, len(best) + 1, part, counted))
        return best

    @staticmethod
    def _reference(a: Assignment, scores: list[Score], part: str) -> float | None:
        if a.baseline is not None:
            return (a.baseline.get(part) or a.baseline)["macro_f1"]  # (one number for an assignment set before 0007)
        if scores:
            return max(sc.baseline_macro_f1 if part == "public" else sc.private_baseline_macro_f1 for sc in scores)
        return None

    def _board_row(self, caller: Caller, sc: Score, rank: int, part: str, counted: set[int]) -> BoardRow:
        mine = sc.owner_id == caller.user_id
        shown = mine or caller.steers
        if part == "public":
            numbers = (sc.macro_f1, sc.accuracy, sc.baseline_macro_f1, sc.per_class_f1, sc.probe_macro_f1)
        else:
            numbers = (sc.private_macro_f1, sc.private_accuracy, sc.private_baseline_macro_f1, sc.private_per_class_f1,
                       sc.private_probe_macro_f1)
        f1, accuracy, baseline, per_class, probe = numbers
        return BoardRow(rank, sc.model_name, f1, accuracy, sc.params, sc.layers, sc.ms_per_message, baseline,
                        sc.submitted_at, mine, sc.owner_id if shown else None, sc.job_id if shown else None,
                        per_class if shown else None, (sc.picked_at is not None) if shown else None,
                        (sc.id in counted) if shown else None, probe_macro_f1=probe)

    async def leaderboard_csv(self, caller: Caller, name: str) -> bytes:
        """Instructors: every scored submission, ranked on the public part, with both parts' numbers, each
        label's F1 on each part, and whether it is picked and counted (spreadsheet-safe cells)."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can export an assignment's submissions.")
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            scores = sorted((await s.execute(select(Score).where(Score.assignment_id == a.id))).scalars(),
                            key=board_key)
        names = await self.member_names(caller)
        counted = counted_scores(scores, a.max_picks)
        best = {r.job_id for r in self._ranked(caller, scores, "public", counted)}
        labels = list(a.labels)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["rank", "job", "student_id", "student", "model", "best_of_student", "public_macro_f1",
                    "public_accuracy", "private_macro_f1", "private_accuracy", "picked", "counted",
                    *[f"public_f1:{lab}" for lab in labels], *[f"private_f1:{lab}" for lab in labels],
                    "params", "layers", "ms_per_message", "public_baseline_macro_f1", "private_baseline_macro_f1",
                    "public_frozen_probe_macro_f1", "private_frozen_probe_macro_f1", "submitted_at"])
        for i, sc in enumerate(scores, 1):
            w.writerow([i, sc.job_id, csv_cell(sc.owner_id), csv_cell(names.get(sc.owner_id, "")),
                        csv_cell(sc.model_name), "yes" if sc.job_id in best else "no", f"{sc.macro_f1:.4f}",
                        f"{sc.accuracy:.4f}", f"{sc.private_macro_f1:.4f}", f"{sc.private_accuracy:.4f}",
                        "yes" if sc.picked_at else "no", "yes" if sc.id in counted else "no",
                        *[f"{sc.per_class_f1.get(lab, 0):.4f}" for lab in labels],
                        *[f"{sc.private_per_class_f1.get(lab, 0):.4f}" for lab in labels],
                        sc.params, sc.layers, f"{sc.ms_per_message:.2f}", f"{sc.baseline_macro_f1:.4f}",
                        f"{sc.private_baseline_macro_f1:.4f}", _num(sc.probe_macro_f1), _num(sc.private_probe_macro_f1),
                        sc.submitted_at.isoformat()])
        return buf.getvalue().encode("utf-8")

    # -- helpers -----------------------------------------------------------------------------------------
    async def _find_assignment(self, s, guild_id: str, name: str) -> Assignment | None:
        return (await s.execute(select(Assignment).where(
            Assignment.guild_id == guild_id, func.lower(Assignment.name) == name.strip().lower()))).scalars().first()

    async def _named_assignment(self, s, caller: Caller, name: str) -> Assignment:
        a = await self._find_assignment(s, caller.guild_id, name or "")
        if a is None:
            names = (await s.execute(select(Assignment.name).where(Assignment.guild_id == caller.guild_id)
                                     .order_by(Assignment.id))).scalars().all()
            known = f"; this class has: {', '.join(names)}" if names else "; this class has none yet"
            raise NotFound(f"There is no assignment '{name}' in this class{known}.")
        return a

    async def _assignment_view(self, s, caller: Caller, a: Assignment) -> AssignmentView:
        train_rows = None
        if a.train_dataset_id is not None:
            train_rows = (await s.get(Dataset, a.train_dataset_id)).rows
        now = self.clock()
        used = await self._submissions(s, a.id, caller.user_id)
        today = await self._submissions(s, a.id, caller.user_id, since=start_of_day(now))
        picks = (await s.execute(select(Score.job_id).where(Score.assignment_id == a.id, Score.owner_id == caller.user_id,
                                                            Score.picked_at.is_not(None)).order_by(Score.job_id))).scalars().all()
        return AssignmentView(a.id, a.name, a.description, list(a.labels), a.test_rows, train_rows, a.deadline,
                              a.max_submissions, a.closed_at, a.created_at, self._reference(a, [], "public"),
                              a.public_share, a.daily_cap, a.max_picks, a.revealed_at, used, today, list(picks),
                              now=now)

    async def _submissions(self, s, assignment_id: int, owner_id: str, since: datetime | None = None) -> int:
        q = select(func.count()).select_from(Job).where(
            Job.assignment_id == assignment_id, Job.owner_id == owner_id, Job.status.not_in((FAILED, CANCELLED)))
        if since is not None:
            q = q.where(Job.created_at >= since)
        return (await s.execute(q)).scalar_one()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
