"""Assignments and the class leaderboard (comparing two runs is ``compare``).

An assignment is a task an instructor sets: a hidden, labelled test file (checked like any upload,
never shown or offered for download, never trained or early-stopped on) that every submission is
scored on in its worker, and optionally a training file students may train on. Only aggregate
numbers of the hidden set ever reach the database (``storage.models.Score``).

Who sees what: students see each board's aggregate numbers and model names, their own rows marked;
instructors also see who submitted what and every submission, and can export them as CSV.

Ranking: macro-F1 on the hidden set as shown (three decimals), then fewer parameters, then fewer ms
per message, then the earlier submission; a student's best submission is their first in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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

from .base import MAX_NAME, ServiceBase, board_key
from .errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from .views import Caller, csv_cell

# Spec fields that say where a run happened rather than how it was trained: left out of a comparison.



@dataclass
class AssignmentView:
    id: int
    name: str
    description: str
    labels: list[str]
    test_rows: int
    train_rows: int | None  # the training file students may use, if there is one
    deadline: datetime | None
    max_submissions: int | None
    closed_at: datetime | None
    created_at: datetime
    baseline_macro_f1: float | None  # TF-IDF trained on the training file, scored on the hidden set
    submissions: int = 0  # the caller's submissions that count (queued, running or succeeded)
    warnings: list[str] | None = None  # at creation: what the instructor should know about the files

    @property
    def is_open(self) -> bool:
        return self.closed_at is None and (self.deadline is None or self.deadline > utcnow())

    @property
    def submissions_left(self) -> int | None:
        return None if self.max_submissions is None else max(0, self.max_submissions - self.submissions)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("deadline", "closed_at", "created_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d | {"open": self.is_open, "submissions_left": self.submissions_left}


@dataclass
class BoardRow:
    rank: int  # among students' best submissions (0 in the list of all submissions)
    model_name: str
    macro_f1: float
    accuracy: float
    params: int
    layers: int
    ms_per_message: float
    baseline_macro_f1: float
    submitted_at: datetime
    mine: bool  # the caller's own submission
    owner_id: str | None  # None when a student looks at another student's row
    job_id: int | None  # likewise
    per_class_f1: dict | None  # likewise

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["submitted_at"] = self.submitted_at.isoformat()
        return d


@dataclass
class Leaderboard:
    assignment: AssignmentView
    best: list[BoardRow]  # one row per student, ranked
    everything: list[BoardRow] | None  # instructors: every scored submission, ranked
    reference: float | None  # the TF-IDF baseline's macro-F1 on the hidden set
    reference_source: str

    def to_dict(self) -> dict:
        return {"assignment": self.assignment.to_dict(), "best": [r.to_dict() for r in self.best],
                "all": [r.to_dict() for r in self.everything] if self.everything is not None else None,
                "baseline_macro_f1": self.reference, "baseline_source": self.reference_source}


def parse_deadline(value: str | datetime | None) -> datetime | None:
    """An ISO date or date-time; without a zone it is UTC, a date alone means the end of that day."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        text = value.strip().replace(" ", "T", 1)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(f"'{value}' is not a date: write it like 2026-12-15 or 2026-12-15T18:00 "
                                 "(UTC unless you add an offset like +01:00).") from None
        if "T" not in text:
            when = when.replace(hour=23, minute=59, second=59)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def when(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC")


class Assignments(ServiceBase):
    # -- setting them ----------------------------------------------------------------------------------
    async def create_assignment(self, caller: Caller, name: str, test: tuple[bytes, str], *,
                                train: tuple[bytes, str] | None = None, deadline: str | datetime | None = None,
                                max_submissions: int | None = None, description: str = "") -> AssignmentView:
        """Instructors: set an assignment. Both files are checked like any upload; the training file
        must hold every label of the test file. On any refusal nothing is stored."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can set assignments.")
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidRequest(f"Give the assignment a name of 1 to {MAX_NAME} characters.")
        if any(c in "/\\" or not c.isprintable() for c in name):
            raise InvalidRequest("An assignment's name is typed by students and shown in web addresses: use "
                                 "letters, digits, spaces and punctuation other than / and \\.")
        due = parse_deadline(deadline)
        if due is not None and due <= utcnow():
            raise InvalidRequest(f"The deadline {when(due)} has already passed; give a time in the future.")
        if max_submissions is not None and not 1 <= int(max_submissions) <= 1000:
            raise InvalidRequest("max_submissions must be between 1 and 1000 (or left out for no limit).")
        async with self.db.transaction() as s:
            await self._member(s, caller)
            if await self._find_assignment(s, caller.guild_id, name) is not None:
                raise Conflict(f"This class already has an assignment named '{name}'; choose another name.")
        with self._staged(test, train) as ((staged, staged_train), created), self._name_taken(name):
            test_info, train_info, baseline, warnings = await self._check_assignment_files(caller, staged,
                                                                                           staged_train)
            async with self.db.transaction() as s:
                if await self._find_assignment(s, caller.guild_id, name) is not None:
                    raise Conflict(f"This class already has an assignment named '{name}'; choose another name.")
                test_ds = await self._dataset(s, caller, staged, test[1], test_info, created)
                train_ds = await self._dataset(s, caller, staged_train, train[1], train_info, created) if train else None
                a = Assignment(guild_id=caller.guild_id, name=name, description=(description or "").strip()[:2000],
                               created_by=caller.user_id, test_dataset_id=test_ds.id,
                               train_dataset_id=train_ds.id if train_ds else None,
                               labels=sorted(test_info["labels"]), test_rows=test_info["rows"], baseline=baseline,
                               deadline=due, max_submissions=max_submissions, created_at=utcnow())
                s.add(a)
                await s.flush()
                view = await self._assignment_view(s, caller, a)
        view.warnings = warnings
        return view

    async def _check_assignment_files(self, caller: Caller, staged: Path, staged_train: Path | None):
        """Both files checked in the sandbox (server limits: an instructor's upload is not held to a
        student's quota), the training file's labels, their overlap, and the TF-IDF reference line."""
        from trainer.hidden import check_assignment_files

        def spec(path: Path) -> dict:
            return self.settings.train_spec(str(path)).to_dict()

        found = await self._read(caller, check_assignment_files, spec(staged),
                                 spec(staged_train) if staged_train else None, self.settings.base_models)
        test_info, train_info = found["test"], found["train"]
        warnings = [f"test file: {w['message']}" for w in test_info["warnings"]]
        if found["missing"]:
            raise InvalidRequest(f"The training file has no examples of {', '.join(found['missing'])}, which the test "
                                 "file has; a model trained on it could never predict them. Add them, or leave the "
                                 "training file out.")
        if found["shared"]:
            warnings.append(f"{found['shared']} of the {test_info['rows']} test texts also appear in the training "
                            "file, so scores on the hidden set will be optimistic; remove them from one of the files.")
        return test_info, train_info, found["baseline"], warnings

    @contextlib.contextmanager
    def _name_taken(self, name: str):
        """Two instructors creating the same name at once: the loser hears it plainly (the unique
        constraint decides), not as a database error."""
        from sqlalchemy.exc import IntegrityError

        try:
            yield
        except IntegrityError:
            raise Conflict(f"This class already has an assignment named '{name}'; choose another name.") from None

    async def assignments(self, caller: Caller) -> list[AssignmentView]:
        """The class's assignments, open ones first, newest first; with the caller's submission counts."""
        async with self.db.transaction() as s:
            await self._class(s, caller.guild_id)
            rows = list((await s.execute(select(Assignment).where(Assignment.guild_id == caller.guild_id)
                                         .order_by(Assignment.id.desc()))).scalars())
            views = [await self._assignment_view(s, caller, a) for a in rows]
        return sorted(views, key=lambda v: not v.is_open)

    async def assignment(self, caller: Caller, name: str) -> AssignmentView:
        async with self.db.transaction() as s:
            return await self._assignment_view(s, caller, await self._named_assignment(s, caller, name))

    async def close_assignment(self, caller: Caller, name: str) -> AssignmentView:
        """Instructors: stop taking submissions (queued ones still run and are scored; the board stays)."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can close assignments.")
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            if a.closed_at is not None:
                raise Conflict(f"Assignment '{a.name}' was already closed on {when(a.closed_at)}.")
            a.closed_at = utcnow()
            return await self._assignment_view(s, caller, a)

    # -- submitting ------------------------------------------------------------------------------------
    async def _open_assignment_for(self, s, caller: Caller, name: str) -> Assignment:
        """The assignment a submission names, refused when it takes no more submissions from this caller."""
        a = await self._named_assignment(s, caller, name)
        if a.closed_at is not None:
            raise Conflict(f"Assignment '{a.name}' is closed: it takes no more submissions. /leaderboard shows "
                           "the results.")
        if a.deadline is not None and a.deadline <= utcnow():
            raise Conflict(f"The deadline of assignment '{a.name}' was {when(a.deadline)}; it takes no more "
                           "submissions. /leaderboard shows the results.")
        if a.max_submissions is not None:
            used = await self._submissions(s, a.id, caller.user_id)
            if used >= a.max_submissions:
                raise Conflict(f"You have used all {a.max_submissions} submission(s) of assignment '{a.name}'. "
                               "Cancelled and failed jobs do not count; /leaderboard shows your best.")
        return a

    async def _submissions(self, s, assignment_id: int, owner_id: str) -> int:
        return (await s.execute(select(func.count()).select_from(Job).where(
            Job.assignment_id == assignment_id, Job.owner_id == owner_id,
            Job.status.not_in((FAILED, CANCELLED))))).scalar_one()

    async def assignment_training_file(self, caller: Caller, name: str) -> tuple[bytes, str]:
        """The training file an assignment offers (a submission with no file of its own uses it)."""
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            ds = await s.get(Dataset, a.train_dataset_id) if a.train_dataset_id else None
        if ds is None:
            raise InvalidRequest(f"Assignment '{a.name}' has no training file: attach your own dataset.")
        path = self.store.path(ds.path)
        return await asyncio.to_thread(path.read_bytes), ds.name

    # -- the board ---------------------------------------------------------------------------------------
    async def leaderboard(self, caller: Caller, name: str) -> Leaderboard:
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            scores = sorted((await s.execute(select(Score).where(Score.assignment_id == a.id))).scalars(),
                            key=board_key)
            view = await self._assignment_view(s, caller, a)
        best, seen = [], set()
        for sc in scores:
            if sc.owner_id not in seen:
                seen.add(sc.owner_id)
                best.append(self._board_row(caller, sc, len(best) + 1))
        everything = [self._board_row(caller, sc, 0) for sc in scores] if caller.steers else None
        if a.baseline is not None:
            reference, source = a.baseline["macro_f1"], "TF-IDF baseline trained on the assignment's training file"
        elif scores:
            reference = max(sc.baseline_macro_f1 for sc in scores)
            source = "best TF-IDF baseline trained on a student's own training split"
        else:
            reference, source = None, "no submissions yet"
        return Leaderboard(view, best, everything, reference, source)

    def _board_row(self, caller: Caller, sc: Score, rank: int) -> BoardRow:
        mine = sc.owner_id == caller.user_id
        shown = mine or caller.steers
        return BoardRow(rank, sc.model_name, sc.macro_f1, sc.accuracy, sc.params, sc.layers, sc.ms_per_message,
                        sc.baseline_macro_f1, sc.submitted_at, mine, sc.owner_id if shown else None,
                        sc.job_id if shown else None, sc.per_class_f1 if shown else None)

    async def leaderboard_csv(self, caller: Caller, name: str) -> bytes:
        """Instructors: every scored submission, ranked, with each label's F1 (spreadsheet-safe cells)."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can export an assignment's submissions.")
        board = await self.leaderboard(caller, name)
        names = await self.member_names(caller)
        labels = board.assignment.labels
        best = {r.job_id for r in board.best}
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["rank", "job", "student_id", "student", "model", "best_of_student", "macro_f1", "accuracy",
                    *[f"f1:{lab}" for lab in labels], "params", "layers", "ms_per_message",
                    "baseline_macro_f1", "submitted_at"])
        for i, r in enumerate(board.everything, 1):
            w.writerow([i, r.job_id, csv_cell(r.owner_id), csv_cell(names.get(r.owner_id, "")),
                        csv_cell(r.model_name), "yes" if r.job_id in best else "no", f"{r.macro_f1:.4f}",
                        f"{r.accuracy:.4f}", *[f"{(r.per_class_f1 or {}).get(lab, 0):.4f}" for lab in labels],
                        r.params, r.layers, f"{r.ms_per_message:.2f}", f"{r.baseline_macro_f1:.4f}",
                        r.submitted_at.isoformat()])
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
        used = await self._submissions(s, a.id, caller.user_id)
        return AssignmentView(a.id, a.name, a.description, list(a.labels), a.test_rows, train_rows, a.deadline,
                              a.max_submissions, a.closed_at, a.created_at,
                              a.baseline["macro_f1"] if a.baseline else None, used)
