"""Grades out: an assignment's final board as a CSV an LMS imports, by a rule the instructor sets."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select

from storage.models import STUDENT, Member

from .boards import Boards
from .errors import InvalidRequest, PermissionDenied
from .views import Caller, csv_cell


@dataclass(frozen=True)
class GradeRule:
    """How a private macro-F1 becomes a grade: ``linear`` (``low`` at the baseline, ``high`` at the best
    counted score, clipped), or thresholds (the first grade whose minimum the score reaches)."""

    thresholds: tuple[tuple[str, float], ...] = ()  # (grade, minimum macro-F1), highest first
    low: float = 0.0
    high: float = 100.0

    @classmethod
    def parse(cls, text: str | None) -> GradeRule:
        text = (text or "linear").strip()
        if text.lower().startswith("linear"):
            rest = text[6:].lstrip(":").strip()
            if not rest:
                return cls()
            try:
                low, high = (float(x) for x in rest.split("-", 1))
            except ValueError:
                raise InvalidRequest(f"'{text}' is not a linear rule: write linear, or linear:LOW-HIGH like "
                                     "linear:50-100 (LOW at the baseline, HIGH at the best score).") from None
            if not 0 <= low < high <= 1000:
                raise InvalidRequest("A linear rule's LOW and HIGH must satisfy 0 ≤ LOW < HIGH ≤ 1000.")
            return cls(low=low, high=high)
        pairs = []
        for item in text.split(","):
            grade, sep, minimum = item.partition("=")
            try:
                value = float(minimum)
            except ValueError:
                value = None
            if not sep or not grade.strip() or len(grade.strip()) > 20 or value is None or not 0 <= value <= 1:
                raise InvalidRequest(f"'{item.strip()}' is not a threshold: write GRADE=MIN with MIN a macro-F1 "
                                     "between 0 and 1, like A=0.85,B=0.75,C=0.6,F=0 (or use linear).")
            pairs.append((grade.strip(), value))
        pairs.sort(key=lambda p: -p[1])
        if pairs[-1][1] > 0:
            raise InvalidRequest(f"The thresholds leave scores below {pairs[-1][1]} without a grade: add one for "
                                 "everything below, like F=0.")
        return cls(thresholds=tuple(pairs))

    def grade(self, score: float, baseline: float | None, best: float) -> str:
        if self.thresholds:
            return next(g for g, minimum in self.thresholds if score >= minimum)
        base = baseline if baseline is not None else 0.0
        if best <= base:
            return f"{self.high if score >= base else self.low:.1f}"  # no room above the baseline: pass or not
        share = min(1.0, max(0.0, (score - base) / (best - base)))
        return f"{self.low + share * (self.high - self.low):.1f}"

    @property
    def text(self) -> str:
        if self.thresholds:
            return ",".join(f"{g}={m:g}" for g, m in self.thresholds)
        return f"linear:{self.low:g}-{self.high:g}"


class Grades(Boards):
    async def grades_csv(self, caller: Caller, name: str, rule: str | GradeRule | None = None) -> bytes:
        """Instructors: one row per student of the class, for an LMS: the counted submission that decides
        their private place, its private macro-F1, the place, and a grade by ``rule`` (GradeRule.parse).
        Students without a scored submission get a row with empty cells."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can export grades.")
        rule = rule if isinstance(rule, GradeRule) else GradeRule.parse(rule)
        board = await self.leaderboard(caller, name)
        async with self.db.transaction() as s:
            members = (await s.execute(select(Member.user_id, Member.display_name, Member.role).where(
                Member.guild_id == caller.guild_id).order_by(Member.user_id))).all()
        names = {user: display or user for user, display, _ in members}
        baseline = board.references.get("private")
        best = max((r.macro_f1 for r in board.private), default=0.0)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["student_id", "student", "job", "model", "counted_by", "private_macro_f1", "public_macro_f1",
                    "rank", "students", "grade", "rule"])
        placed = {r.owner_id for r in board.private}
        public = {r.owner_id: r.macro_f1 for r in board.public}
        for r in board.private:
            w.writerow([csv_cell(r.owner_id), csv_cell(names.get(r.owner_id, r.owner_id)), r.job_id,
                        csv_cell(r.model_name), "pick" if r.picked else "best public", f"{r.macro_f1:.4f}",
                        f"{public[r.owner_id]:.4f}", r.rank, len(board.private),
                        csv_cell(rule.grade(r.macro_f1, baseline, best)), csv_cell(rule.text)])
        for user, _, role in members:
            if user not in placed and role == STUDENT:
                w.writerow([csv_cell(user), csv_cell(names[user]), "", "", "no scored submission", "", "", "",
                            len(board.private), "", csv_cell(rule.text)])
        return buf.getvalue().encode("utf-8")
