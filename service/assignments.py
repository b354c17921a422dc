"""Assignments and their boards (comparing two runs is ``compare``).

An assignment is a task an instructor sets: a hidden, labelled test file (checked like any upload,
never shown or offered for download, never trained or early-stopped on) that every submission is
scored on in its worker, and optionally a training file students may train on. Only aggregate
numbers of the hidden set ever reach the database (``storage.models.Score``).

The hidden set is split once, at creation, into a public part (``public_share``, default 30 %) and a
private part (``trainer.hidden.split_public``). Every submission is scored on both.

Who sees what: until the reveal, students see the public board only (each student's best submission
on the public part: model names and numbers, their own rows marked); no private number reaches them
through any command, page or file. Instructors see both boards, who submitted what, every submission,
the shake-up between the boards, and can export submissions and grades as CSV. The reveal (at the
deadline, by a periodic task, once the last submission has finished; or when an instructor asks)
sets ``revealed_at`` once, in a conditional update only one process can win, and writes one outbox
row: the private board is posted in the channel and each student is told their place.

The private board counts each student's final picks (up to ``max_picks``; without a pick, their best
``max_picks`` submissions on the public board, as on Kaggle) and ranks the best of them on the private
part. Ranking on either board: macro-F1 as shown (three decimals), then fewer parameters, then fewer ms
per message, then the earlier submission.

Limits: ``max_submissions`` in all and ``daily_cap`` per UTC day, per student; failed and cancelled
submissions give the try back.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from storage.models import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STUDENT,
    Assignment,
    Dataset,
    Job,
    Member,
    Outbox,
    Score,
    utcnow,
)

from .base import MAX_NAME, ServiceBase, board_key
from .errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from .views import Caller, csv_cell

DEFAULT_PUBLIC_SHARE = 0.3
DEFAULT_PICKS = 2


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

    @property
    def best(self) -> list[BoardRow]:
        """The board shown first."""
        return self.private if self.board == "private" else self.public

    @property
    def reference(self) -> float | None:
        return self.references.get(self.board)

    def to_dict(self) -> dict:
        rows = lambda items: [r.to_dict() for r in items] if items is not None else None  # noqa: E731
        return {"assignment": self.assignment.to_dict(), "board": self.board, "best": rows(self.best),
                "public": rows(self.public), "private": rows(self.private), "all": rows(self.everything),
                "shake_up": [m.to_dict() for m in self.shake_up] if self.shake_up is not None else None,
                "baseline_macro_f1": self.reference, "baselines": self.references,
                "baseline_source": self.reference_source}


@dataclass
class Picks:
    """A student's final picks on an assignment, after a pick or an unpick."""

    assignment: str
    owner_id: str
    picked: list[tuple[int, str, float]]  # (job id, model name, public macro-F1), best public first
    max_picks: int

    @property
    def text(self) -> str:
        if not self.picked:
            return (f"No final picks: your best {self.max_picks} submission(s) on the public board count for the "
                    "private board.")
        listed = "; ".join(f"job {j} `{n}` (public macro-F1 {f:.3f})" for j, n, f in self.picked)
        return f"Your final picks ({len(self.picked)} of {self.max_picks}) for the private board: {listed}."

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "owner_id": self.owner_id, "max_picks": self.max_picks,
                "picked": [{"job_id": j, "model_name": n, "public_macro_f1": f} for j, n, f in self.picked]}


@dataclass
class Reveal:
    """What a reveal did: revealed now, or waiting for the submissions still training."""

    assignment: str
    revealed: bool
    waiting: int  # submissions still queued or running (the reveal follows when they have finished)
    board: Leaderboard | None  # the instructor's view of the boards, once revealed


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
            return f"{self.high if score >= base else self.low:g}"
        share = min(1.0, max(0.0, (score - base) / (best - base)))
        return f"{self.low + share * (self.high - self.low):.1f}"

    @property
    def text(self) -> str:
        if self.thresholds:
            return ",".join(f"{g}={m:g}" for g, m in self.thresholds)
        return f"linear:{self.low:g}-{self.high:g}"


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


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(now: datetime) -> datetime:
    return start_of_day(now) + timedelta(days=1)


OPEN = (QUEUED, RUNNING)


class Assignments(ServiceBase):
    # -- setting them ----------------------------------------------------------------------------------
    async def create_assignment(self, caller: Caller, name: str, test: tuple[bytes, str], *,
                                train: tuple[bytes, str] | None = None, deadline: str | datetime | None = None,
                                max_submissions: int | None = None, description: str = "",
                                public_share: float | None = None, daily_cap: int | None = None,
                                max_picks: int | None = None, channel_id: str | None = None) -> AssignmentView:
        """Instructors: set an assignment. Both files are checked like any upload; the training file
        must hold every label of the test file; the test file is split into its public and private parts.
        On any refusal nothing is stored. ``channel_id``: where the class is told (and the reveal posted)."""
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
        if daily_cap is not None and not 1 <= int(daily_cap) <= 100:
            raise InvalidRequest("daily_cap must be between 1 and 100 submissions a day (or left out for no cap).")
        if max_picks is not None and not 1 <= int(max_picks) <= 10:
            raise InvalidRequest("picks must be between 1 and 10 submissions per student.")
        share = DEFAULT_PUBLIC_SHARE if public_share is None else float(public_share)
        if not 0.1 <= share <= 0.9:
            raise InvalidRequest(f"public_share {share:g} is outside 0.1 to 0.9: it is the part of the hidden set the "
                                 "public board is scored on (0.3: 30 %), and each part needs enough examples.")
        async with self.db.transaction() as s:
            await self._member(s, caller)
            if await self._find_assignment(s, caller.guild_id, name) is not None:
                raise Conflict(f"This class already has an assignment named '{name}'; choose another name.")
        with self._staged(test, train) as ((staged, staged_train), created), self._name_taken(name):
            found, warnings = await self._check_assignment_files(caller, staged, staged_train, share)
            test_info, train_info = found["test"], found["train"]
            async with self.db.transaction() as s:
                if await self._find_assignment(s, caller.guild_id, name) is not None:
                    raise Conflict(f"This class already has an assignment named '{name}'; choose another name.")
                test_ds = await self._dataset(s, caller, staged, test[1], test_info, created)
                train_ds = await self._dataset(s, caller, staged_train, train[1], train_info, created) if train else None
                a = Assignment(guild_id=caller.guild_id, name=name, description=(description or "").strip()[:2000],
                               created_by=caller.user_id, test_dataset_id=test_ds.id,
                               train_dataset_id=train_ds.id if train_ds else None,
                               labels=sorted(test_info["labels"]), test_rows=test_info["rows"],
                               baseline=found["baseline"], deadline=due, max_submissions=max_submissions,
                               public_share=share, public_rows=found["public_rows"], daily_cap=daily_cap,
                               max_picks=max_picks or DEFAULT_PICKS, channel_id=channel_id, reveal_due_at=due,
                               created_at=utcnow())
                s.add(a)
                await s.flush()
                view = await self._assignment_view(s, caller, a)
        view.warnings = warnings
        return view

    async def _check_assignment_files(self, caller: Caller, staged: Path, staged_train: Path | None,
                                      share: float) -> tuple[dict, list[str]]:
        """Both files checked in the sandbox (server limits: an instructor's upload is not held to a
        student's quota), the public part's rows, the training file's labels, their overlap, and the
        TF-IDF reference lines."""
        from trainer.hidden import check_assignment_files

        def spec(path: Path) -> dict:
            return self.settings.train_spec(str(path)).to_dict()

        found = await self._read(caller, check_assignment_files, spec(staged),
                                 spec(staged_train) if staged_train else None, self.settings.base_models, share)
        test_info = found["test"]
        warnings = [f"test file: {w['message']}" for w in test_info["warnings"]]
        if found["missing"]:
            raise InvalidRequest(f"The training file has no examples of {', '.join(found['missing'])}, which the test "
                                 "file has; a model trained on it could never predict them. Add them, or leave the "
                                 "training file out.")
        if found["shared"]:
            warnings.append(f"{found['shared']} of the {test_info['rows']} test texts also appear in the training "
                            "file, so scores on the hidden set will be optimistic; remove them from one of the files.")
        public, private = found["parts"]["public"], found["parts"]["private"]
        few = sorted(lab for lab in test_info["labels"] if min(public.get(lab, 0), private.get(lab, 0)) < 5)
        if few:
            warnings.append(f"The public part has {sum(public.values())} examples and the private part "
                            f"{sum(private.values())}; {', '.join(few[:5])}{' …' if len(few) > 5 else ''} "
                            "has fewer than 5 in one part, so its F1 there moves in big steps: a larger hidden set "
                            "makes both boards steadier.")
        return found, warnings

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
        view = await self._assignment_view(s, caller, a)
        if view.submissions_left == 0:
            raise Conflict(f"You have used all {a.max_submissions} submission(s) of assignment '{a.name}' "
                           f"({view.limits}). Cancelled and failed jobs do not count; /leaderboard shows your best.")
        if view.left_today == 0:
            raise Conflict(f"You have used today's {a.daily_cap} submission(s) to assignment '{a.name}' "
                           f"({view.limits}). Cancelled and failed jobs give the try back.")
        return a

    async def _submissions(self, s, assignment_id: int, owner_id: str, since: datetime | None = None) -> int:
        q = select(func.count()).select_from(Job).where(
            Job.assignment_id == assignment_id, Job.owner_id == owner_id, Job.status.not_in((FAILED, CANCELLED)))
        if since is not None:
            q = q.where(Job.created_at >= since)
        return (await s.execute(q)).scalar_one()

    async def assignment_training_file(self, caller: Caller, name: str) -> tuple[bytes, str]:
        """The training file an assignment offers (a submission with no file of its own uses it)."""
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            ds = await s.get(Dataset, a.train_dataset_id) if a.train_dataset_id else None
        if ds is None:
            raise InvalidRequest(f"Assignment '{a.name}' has no training file: attach your own dataset.")
        path = self.store.path(ds.path)
        return await asyncio.to_thread(path.read_bytes), ds.name

    # -- final picks -----------------------------------------------------------------------------------
    async def pick(self, caller: Caller, name: str, job_id: int, *, remove: bool = False,
                   student: str | None = None) -> Picks:
        """Select (or, ``remove``, deselect) a scored submission as one of its owner's final picks: the
        submissions that count on the private board; until the reveal. The owner picks, or an instructor for
        ``student`` (the job must be theirs)."""
        from .base import _valid_id

        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            if a.revealed_at is not None:
                raise Conflict(f"The private board of '{a.name}' was revealed on {when(a.revealed_at)}: the picks "
                               "are final.")
            if student is not None and not caller.steers:
                raise PermissionDenied("Only instructors can pick for another student.")
            owner = student or caller.user_id
            job = await s.get(Job, int(job_id)) if _valid_id(job_id) else None
            if job is None or job.assignment_id != a.id or job.owner_id != owner:
                whose = "your" if owner == caller.user_id else f"{owner}'s"
                raise NotFound(f"Job {job_id} is not one of {whose} submissions to '{a.name}'; /jobs lists them.")
            await self._member(s, Caller(caller.guild_id, job.owner_id), lock=True)  # picks of one student: one at a time
            score = (await s.execute(select(Score).where(Score.job_id == job.id))).scalar_one_or_none()
            if score is None:
                raise Conflict(f"Job {job.id} has no score on '{a.name}' ({job.status}): pick a submission once it "
                               "has finished and been scored.")
            mine = list((await s.execute(select(Score).where(Score.assignment_id == a.id,
                                                             Score.owner_id == job.owner_id))).scalars())
            picked = [sc for sc in mine if sc.picked_at is not None]
            if remove:
                score.picked_at = None
            elif score.picked_at is None:
                if len(picked) >= a.max_picks:
                    raise Conflict(f"{len(picked)} of {a.max_picks} picks are taken (jobs "
                                   f"{', '.join(str(sc.job_id) for sc in picked)}): remove one first.")
                score.picked_at = utcnow()
            await s.flush()
            now = sorted((sc for sc in mine if sc.picked_at is not None), key=board_key)
            return Picks(a.name, job.owner_id, [(sc.job_id, sc.model_name, sc.macro_f1) for sc in now], a.max_picks)

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
        references = {"public": self._reference(a, scores, "public")}
        if sees_private:
            references["private"] = self._reference(a, scores, "private")
        if a.baseline is not None:
            source = "TF-IDF baseline trained on the assignment's training file"
        elif scores:
            source = "best TF-IDF baseline trained on a student's own training split"
        else:
            source = "no submissions yet"
        return Leaderboard(view, "private" if a.revealed_at is not None else "public", public, private, everything,
                           shake_up, references, source)

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
            numbers = (sc.macro_f1, sc.accuracy, sc.baseline_macro_f1, sc.per_class_f1)
        else:
            numbers = (sc.private_macro_f1, sc.private_accuracy, sc.private_baseline_macro_f1, sc.private_per_class_f1)
        f1, accuracy, baseline, per_class = numbers
        return BoardRow(rank, sc.model_name, f1, accuracy, sc.params, sc.layers, sc.ms_per_message, baseline,
                        sc.submitted_at, mine, sc.owner_id if shown else None, sc.job_id if shown else None,
                        per_class if shown else None, (sc.picked_at is not None) if shown else None,
                        (sc.id in counted) if shown else None)

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
                    "submitted_at"])
        for i, sc in enumerate(scores, 1):
            w.writerow([i, sc.job_id, csv_cell(sc.owner_id), csv_cell(names.get(sc.owner_id, "")),
                        csv_cell(sc.model_name), "yes" if sc.job_id in best else "no", f"{sc.macro_f1:.4f}",
                        f"{sc.accuracy:.4f}", f"{sc.private_macro_f1:.4f}", f"{sc.private_accuracy:.4f}",
                        "yes" if sc.picked_at else "no", "yes" if sc.id in counted else "no",
                        *[f"{sc.per_class_f1.get(lab, 0):.4f}" for lab in labels],
                        *[f"{sc.private_per_class_f1.get(lab, 0):.4f}" for lab in labels],
                        sc.params, sc.layers, f"{sc.ms_per_message:.2f}", f"{sc.baseline_macro_f1:.4f}",
                        f"{sc.private_baseline_macro_f1:.4f}", sc.submitted_at.isoformat()])
        return buf.getvalue().encode("utf-8")

    # -- the reveal ------------------------------------------------------------------------------------
    async def reveal(self, caller: Caller, name: str) -> Reveal:
        """Instructors: reveal the private board now. The assignment is closed first; with submissions still
        queued or running, the reveal follows when they have finished (the periodic task does it)."""
        if not caller.steers:
            raise PermissionDenied("Only instructors can reveal an assignment's private board.")
        async with self.db.transaction() as s:
            a = await self._named_assignment(s, caller, name)
            if a.revealed_at is not None:
                raise Conflict(f"The private board of '{a.name}' was already revealed on {when(a.revealed_at)}.")
            now = utcnow()
            a.closed_at = a.closed_at or now
            a.reveal_due_at = min(a.reveal_due_at or now, now)
            waiting = await self._open_submissions(s, a.id)
            if not waiting:
                await self._reveal(s, a)
        board = await self.leaderboard(caller, a.name) if not waiting else None
        return Reveal(a.name, not waiting, waiting, board)

    async def reveal_due(self) -> list[str]:
        """The periodic task: reveal every assignment whose deadline (or instructor's request) has passed and
        whose submissions have all finished. Safe to run in several processes at once: each reveal is one
        conditional update, so exactly one of them announces it. Returns the names it revealed."""
        async with self.db.transaction() as s:
            due = list((await s.execute(select(Assignment).where(
                Assignment.revealed_at.is_(None), Assignment.reveal_due_at.is_not(None),
                Assignment.reveal_due_at <= utcnow()))).scalars())
            revealed = [a.name for a in due if not await self._open_submissions(s, a.id) and await self._reveal(s, a)]
        return revealed

    async def _open_submissions(self, s, assignment_id: int) -> int:
        return (await s.execute(select(func.count()).select_from(Job).where(
            Job.assignment_id == assignment_id, Job.status.in_(OPEN)))).scalar_one()

    async def _reveal(self, s, a: Assignment) -> bool:
        """Set ``revealed_at`` unless another process already did; the winner writes the one outbox row."""
        now = utcnow()
        won = (await s.execute(update(Assignment).where(Assignment.id == a.id, Assignment.revealed_at.is_(None))
                               .values(revealed_at=now).execution_options(synchronize_session=False))).rowcount == 1
        if won:
            s.add(Outbox(guild_id=a.guild_id, kind="assignment_revealed", job_id=None, channel_id=a.channel_id,
                         payload={"assignment_id": a.id, "name": a.name, "owner_id": a.created_by}))
            a.revealed_at = now
        return won

    async def revealed_board(self, assignment_id: int) -> Leaderboard | None:
        """A revealed assignment's boards as its instructors see them, for the outbox pump (no caller: it
        posts where the assignment was announced)."""
        async with self.db.transaction() as s:
            a = await s.get(Assignment, assignment_id)
            if a is None or a.revealed_at is None:
                return None
            name, guild = a.name, a.guild_id
        return await self.leaderboard(Caller(guild, "*", operator=True), name)

    # -- grades ----------------------------------------------------------------------------------------
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
