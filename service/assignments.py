"""Assignments: setting one, submitting to it within its limits, final picks, and the reveal (what
each caller is shown of the boards is ``service.boards``).

An assignment is a task an instructor sets: a hidden, labelled test file (checked like any upload,
never shown or offered for download, never trained or early-stopped on) that every submission is
scored on in its worker, and optionally a training file students may train on. Only aggregate
numbers of the hidden set ever reach the database (``storage.models.Score``).

The hidden set is split once, at creation, into a public part (``public_share``, default 30 %) and a
private part (``trainer.hidden.split_public``); every submission is scored on both. Limits:
``max_submissions`` in all and ``daily_cap`` per UTC day, per student; failed and cancelled
submissions give the try back. Each student may pick up to ``max_picks`` submissions to count for
the private board, until the reveal.

The reveal (at the deadline, by a periodic task, once the last submission made before it has
finished; or when an instructor asks) sets ``revealed_at`` once, in a conditional update only one
process can win, and writes one outbox row: the private board is posted in the channel and each
student is told their place.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update

from storage.models import (
    QUEUED,
    RUNNING,
    Assignment,
    Dataset,
    Job,
    Outbox,
    Score,
    utcnow,
)

from .base import MAX_NAME, board_key
from .boards import AssignmentView, Leaderboard
from .errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from .grades import Grades
from .views import Caller

OPEN = (QUEUED, RUNNING)


DEFAULT_PUBLIC_SHARE = 0.3
DEFAULT_PICKS = 2


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


class Assignments(Grades):
    """Setting assignments, submitting to them, final picks and the reveal (the boards: Boards; grades: Grades)."""


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
            # locked (PostgreSQL; SQLite's writer lock already serialises): a reveal that commits meanwhile is
            # seen here, and one that starts meanwhile waits for this pick
            await s.refresh(a, with_for_update=True)
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



