"""Assignments a class can trust, through the service on SQLite and PostgreSQL: the hidden set split
once into a public and a private part, caps per day and in all, final picks, the reveal (idempotent
across processes), the shake-up, grades out, and no private number reaching a student before the
reveal through any of the service's answers.

Scores are written as the worker writes them (``helpers.scored``), so no training is needed here; the
whole life with real workers is in test_assignments.py (command line) and test_bot_assignments.py
(Discord)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest
from helpers import (
    ALICE,
    BOB,
    CAROL,
    HIDDEN,
    PRIVATE_PROBE,
    TEACH,
    TRAIN,
    csv_bytes,
    hidden_rows,
    scored,
)
from sqlalchemy import select, update

from service import Caller
from service.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from service.grades import GradeRule
from storage.models import Assignment, Job, Outbox, Score, utcnow
from trainer.hidden import HiddenTest, score_hidden, split_public

# Private numbers no student may see before the reveal: distinctive, so a leak is one search away.
SECRET = (0.4242, 0.9191, 0.3131, 0.8383, 0.2727)


def test_the_split_is_stratified_seeded_and_leaves_every_label_in_both_parts():
    rows = list(range(2, 102))  # file rows (after the header)
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 8 + ["d"] * 2
    public = split_public(rows, labels, 0.3)
    assert public == split_public(rows, labels, 0.3)  # the same split wherever it is made
    by_label = {lab: sum(1 for r, y in zip(rows, labels, strict=True) if y == lab and r in public) for lab in "abcd"}
    assert by_label == {"a": 18, "b": 9, "c": 2, "d": 1}  # 30 % of each, and one of two
    assert split_public(rows, labels, 0.5) != public
    assert split_public([5], ["lonely"], 0.3) == []  # a single example goes to the private part, which decides


class _Predictor:
    """A served model that answers from a lookup (what score_hidden calls: labels, logits)."""

    labels = ["food", "sports", "weather"]

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def logits(self, texts):
        import numpy as np

        return np.array([[1.0 if self.answers[t] == lab else 0.0 for lab in self.labels] for t in texts])


def test_each_part_is_scored_on_its_own_rows(tmp_path):
    from core.spec import DataLimits

    data = hidden_rows()  # 8 per label
    path = tmp_path / "hidden.csv"
    path.write_bytes(csv_bytes(data))
    file_rows = list(range(2, 2 + len(data)))
    public = split_public(file_rows, [lab for _, lab in data], 0.3)
    # right on every public row, wrong on every private one: the parts must not be mixed up
    answers = {t: (lab if r in public else "sports" if lab != "sports" else "food")
               for r, (t, lab) in zip(file_rows, data, strict=True)}
    hidden = HiddenTest(str(path), "text", "label", ["food", "sports", "weather"], tuple(public))
    texts, labels = [t for t, _ in data], [lab for _, lab in data]
    always_food = lambda texts: ["food"] * len(texts)  # noqa: E731 - a frozen base that knew one label
    got = score_hidden(_Predictor(answers), hidden, DataLimits(), texts, labels, seed=1, frozen_base=always_food)
    assert got["public"]["macro_f1"] == 1.0 and got["public"]["examples"] == len(public) == 6
    assert got["private"]["probe_macro_f1"] == pytest.approx(0.5 / 3)  # food: precision 6/18, recall 1
    assert got["private"]["accuracy"] == 0.0 and got["private"]["examples"] == 18
    whole = score_hidden(_Predictor(answers), HiddenTest(str(path), "text", "label", hidden.labels), DataLimits(),
                         texts, labels, seed=1)
    assert whole["public"] == whole["private"] and whole["public"]["accuracy"] == 0.25  # no split: one set
    assert whole["public"]["probe_macro_f1"] is None  # no probe in that run: no reference, not a zero


async def test_caps_per_day_and_in_all_are_enforced_and_shown(service, db):
    view = await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"), train=(TRAIN, "train.csv"),
                                           max_submissions=3, daily_cap=2)
    assert (view.public_share, view.daily_cap, view.max_picks) == (0.3, 2, 2)
    first = await service.submit(ALICE, None, None, name="one", assignment="topics")
    assert first.assignment.limits == "1 of 2 today, 1 of 3 in all; 1 more today"
    second = await service.submit(ALICE, None, None, name="two", assignment="topics")
    assert second.assignment.limits == "2 of 2 today, 2 of 3 in all; the next one tomorrow at 00:00 UTC"
    with pytest.raises(Conflict) as err:
        await service.submit(ALICE, None, None, name="three", assignment="topics")
    assert "today's 2 submission(s)" in str(err.value) and "tomorrow at 00:00 UTC" in str(err.value)
    await service.cancel(ALICE, second.job.id)  # a cancelled submission gives the try back
    await service.submit(ALICE, None, None, name="three", assignment="topics")

    async with db.transaction() as s:  # a day later, today's cap is fresh; the total is not
        await s.execute(update(Job).values(created_at=utcnow() - timedelta(days=1)))
    [listed] = await service.assignments(ALICE)
    assert listed.limits == "0 of 2 today, 2 of 3 in all; 1 more in all"
    await service.submit(ALICE, None, None, name="four", assignment="topics")
    with pytest.raises(Conflict) as err:
        await service.submit(ALICE, None, None, name="five", assignment="topics")
    assert "used all 3 submission(s)" in str(err.value) and "3 of 3 in all; none left" in str(err.value)
    assert (await service.assignment(BOB, "topics")).limits == "0 of 2 today, 0 of 3 in all; 2 more today"
    async with db.transaction() as s:
        assert (await s.execute(select(Job.name).where(Job.status == "queued").order_by(Job.id))).scalars().all() == [
            "one", "three", "four"]  # the refused ones left nothing

    for bad in ({"daily_cap": 0}, {"public_share": 0.95}, {"max_picks": 11}):
        with pytest.raises(InvalidRequest):
            await service.create_assignment(TEACH, "other", (HIDDEN, "test.csv"), **bad)


async def _class_with_scores(service, db):
    """Three students; the public and private parts disagree, as they do on small sets."""
    view = await service.create_assignment(TEACH, "topics", (HIDDEN, "test.csv"))
    aid = view.id
    jobs = {
        "a-strong": await scored(service, db, ALICE, "a-strong", 0.90, 2_000_000, 1.0, aid, private=SECRET[0]),
        "a-steady": await scored(service, db, ALICE, "a-steady", 0.70, 2_000_000, 1.0, aid, private=SECRET[1]),
        "a-third": await scored(service, db, ALICE, "a-third", 0.60, 2_000_000, 1.0, aid, private=SECRET[4]),
        "b-one": await scored(service, db, BOB, "b-one", 0.80, 2_000_000, 1.0, aid, private=SECRET[3]),
        "c-one": await scored(service, db, CAROL, "c-one", 0.85, 2_000_000, 1.0, aid, private=SECRET[2]),
    }
    return aid, jobs


def _no_secret(*answers) -> None:
    text = json.dumps([a.to_dict() if hasattr(a, "to_dict") else a for a in answers], default=str)
    found = [f"{x}" for x in (*SECRET, PRIVATE_PROBE) if f"{x}" in text or f"{x:.3f}" in text]
    assert found == [], f"private numbers reached a student: {found}"


async def test_students_see_only_the_public_board_until_the_reveal(service, db):
    aid, jobs = await _class_with_scores(service, db)
    board = await service.leaderboard(ALICE, "topics")
    assert board.board == "public" and board.private is None and board.everything is None and board.shake_up is None
    assert [(r.rank, r.model_name, r.macro_f1) for r in board.best] == [
        (1, "a-strong", 0.90), (2, "c-one", 0.85), (3, "b-one", 0.80)]
    assert board.references == {"public": 0.6} and board.probes == {"public": 0.65}  # no private reference either
    assert board.reference_lines() == [("frozen base + probe", 0.65), ("TF-IDF baseline", 0.6)]
    standing = (await service.report(ALICE, jobs["a-steady"])).standing
    mine = await service.my_submissions(ALICE, "topics")
    _no_secret(board, standing.__dict__, *mine, await service.assignment(ALICE, "topics"),
               await service.pick(ALICE, "topics", jobs["a-steady"]))
    for refused in (service.leaderboard_csv(ALICE, "topics"), service.grades_csv(ALICE, "topics"),
                    service.reveal(ALICE, "topics")):
        with pytest.raises(PermissionDenied):
            await refused
    with pytest.raises(PermissionDenied):  # nor may a student pick for a classmate
        await service.pick(ALICE, "topics", jobs["b-one"], student="bob")
    with pytest.raises(NotFound):
        await service.pick(ALICE, "topics", jobs["b-one"])


async def test_picks_decide_what_counts_on_the_private_board_and_the_shake_up(service, db):
    aid, jobs = await _class_with_scores(service, db)
    teacher = await service.leaderboard(TEACH, "topics")
    # no picks: each student's best two public submissions count (Alice's third never does)
    assert [(r.owner_id, r.model_name, r.macro_f1) for r in teacher.private] == [
        ("alice", "a-steady", SECRET[1]), ("bob", "b-one", SECRET[3]), ("carol", "c-one", SECRET[2])]
    assert {m.owner_id: (m.public_rank, m.private_rank, m.change) for m in teacher.shake_up} == {
        "alice": (1, 1, 0), "bob": (3, 2, 1), "carol": (2, 3, -1)}
    assert teacher.references == {"public": 0.6, "private": 0.55}
    assert teacher.reference_lines("private") == [("frozen base + probe", PRIVATE_PROBE), ("TF-IDF baseline", 0.55)]
    drawn = [r if isinstance(r, tuple) else r.owner_id for r in teacher.with_references(teacher.private, "private")]
    assert drawn == ["alice", "bob", ("frozen base + probe", PRIVATE_PROBE), ("TF-IDF baseline", 0.55), "carol"]

    picks = await service.pick(ALICE, "topics", jobs["a-third"])
    assert [j for j, _, _ in picks.picked] == [jobs["a-third"]]
    await service.pick(ALICE, "topics", jobs["a-strong"])
    with pytest.raises(Conflict) as err:  # two picks at most
        await service.pick(ALICE, "topics", jobs["a-steady"])
    assert "2 of 2 picks are taken" in str(err.value)
    again = await service.pick(ALICE, "topics", jobs["a-strong"])  # picking a pick again changes nothing
    assert [j for j, _, _ in again.picked] == [jobs["a-strong"], jobs["a-third"]]  # best public first
    after = await service.leaderboard(TEACH, "topics")
    assert [(r.owner_id, r.model_name) for r in after.private] == [
        ("bob", "b-one"), ("alice", "a-strong"), ("carol", "c-one")]  # her picks replaced a-steady: she falls
    await service.pick(ALICE, "topics", jobs["a-third"], remove=True)
    await service.pick(TEACH, "topics", jobs["a-steady"], student="alice")  # an instructor picks for her
    final = await service.leaderboard(TEACH, "topics")
    assert [(r.owner_id, r.model_name, r.picked) for r in final.private][0] == ("alice", "a-steady", True)

    queued = await service.submit(BOB, TRAIN, "t.csv", name="b-queued", assignment="topics")
    with pytest.raises(Conflict) as err:
        await service.pick(BOB, "topics", queued.job.id)
    assert "no score" in str(err.value)


async def test_the_reveal_waits_for_the_last_submission_and_is_announced_once(service, db, db_url, settings_for):
    from service import Service
    from storage.db import Database

    aid, jobs = await _class_with_scores(service, db)
    late = await service.submit(BOB, TRAIN, "t.csv", name="b-late", assignment="topics")  # still queued
    past = utcnow() - timedelta(minutes=1)
    async with db.transaction() as s:
        await s.execute(update(Assignment).values(deadline=past, reveal_due_at=past))
    assert await service.reveal_due() == []  # a submission made before the deadline is still training
    assert (await service.leaderboard(ALICE, "topics")).private is None
    async with db.transaction() as s:
        await s.execute(update(Job).where(Job.id == late.job.id).values(status="failed"))

    # two schedulers' periodic tasks at once (each its own engine, as two processes): one reveal, one notice
    other_db = Database(db_url)
    try:
        other = Service(other_db, settings_for(db_url))
        results = await asyncio.gather(service.reveal_due(), other.reveal_due(), service.reveal_due())
    finally:
        await other_db.close()
    assert sorted(results) == [[], [], ["topics"]]
    async with db.transaction() as s:
        notices = (await s.execute(select(Outbox).where(Outbox.kind == "assignment_revealed"))).scalars().all()
    assert [(n.payload["assignment_id"], n.job_id) for n in notices] == [(aid, None)]
    assert await service.reveal_due() == []

    board = await service.leaderboard(ALICE, "topics")  # now the class sees the final board
    assert board.board == "private" and [r.macro_f1 for r in board.best] == [SECRET[1], SECRET[3], SECRET[2]]
    assert board.shake_up is None and board.best[0].mine and board.best[1].owner_id is None
    with pytest.raises(Conflict) as err:
        await service.pick(ALICE, "topics", jobs["a-third"])
    assert "picks are final" in str(err.value)
    with pytest.raises(Conflict):
        await service.reveal(TEACH, "topics")


async def test_an_instructor_reveals_early_and_exports_grades(service, db):
    aid, jobs = await _class_with_scores(service, db)
    eve = Caller("class-a", "eve", name='=HYPERLINK("http://x","y")')
    await service.submit(eve, TRAIN, "t.csv", name="eve-queued", assignment="topics")
    waiting = await service.reveal(TEACH, "topics")
    assert (waiting.revealed, waiting.waiting) == (False, 1)
    assert not (await service.assignment(ALICE, "topics")).is_open  # closed at once: no more submissions
    async with db.transaction() as s:
        await s.execute(update(Job).where(Job.owner_id == "eve").values(status="cancelled"))
    assert await service.reveal_due() == ["topics"]  # the periodic task finishes what the instructor asked

    grades = list(csv.DictReader(io.StringIO((await service.grades_csv(TEACH, "topics")).decode())))
    assert [(g["student_id"], g["counted_by"], g["private_macro_f1"], g["rank"], g["grade"]) for g in grades] == [
        ("alice", "best public", f"{SECRET[1]:.4f}", "1", "100.0"),
        ("bob", "best public", f"{SECRET[3]:.4f}", "2", f"{100 * (SECRET[3] - 0.55) / (SECRET[1] - 0.55):.1f}"),
        ("carol", "best public", f"{SECRET[2]:.4f}", "3", "0.0"),  # below the baseline: clipped
        ("eve", "no scored submission", "", "", ""),
    ]
    assert grades[0]["job"] == str(jobs["a-steady"]) and grades[0]["student"] == "Alice"
    raw = (await service.grades_csv(TEACH, "topics", "A=0.9,B=0.8,F=0")).decode()
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert [r["grade"] for r in rows] == ["A", "B", "F", ""] and rows[3]["student"].startswith("'=")  # formula-safe
    assert [r["grade"] for r in csv.DictReader(io.StringIO(
        (await service.grades_csv(TEACH, "topics", "linear:50-100")).decode()))][::2] == ["100.0", "50.0"]
    for bad in ("A=0.9,B=0.8", "A=1.5,F=0", "linear:100-50", "A:0.9"):
        with pytest.raises(InvalidRequest):
            GradeRule.parse(bad)


async def test_an_assignment_set_before_the_two_parts_keeps_its_board_after_the_upgrade(db_url):
    """Migration 0007 on a class's data: old scores (whole set) become both parts; a closed assignment counts
    as revealed (nothing is private), an open one is revealed at its deadline like any other."""
    from sqlalchemy import text

    from storage.db import Database

    database = Database(db_url)
    try:
        await database.upgrade("0006")
        now = utcnow().replace(tzinfo=None)
        async with database.engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO classes (guild_id, name, paused, max_queued_per_student, max_running_per_student, "
                "max_jobs_per_day, max_rows, max_bytes, max_epochs, created_at) "
                "VALUES ('g', 'c', false, 5, 1, 20, 1000, 1000000, 10, :now)"), {"now": now})
            await conn.execute(text(
                "INSERT INTO datasets (id, guild_id, owner_id, name, sha256, path, rows, bytes, labels, lint, created_at) "
                "VALUES (1, 'g', 't', 'h.csv', 'x', 'datasets/h', 24, 100, '{}', '{}', :now)"), {"now": now})
            for aid, closed in ((1, now), (2, None)):
                await conn.execute(text(
                    "INSERT INTO assignments (id, guild_id, name, description, created_by, test_dataset_id, labels, "
                    "test_rows, deadline, closed_at, created_at) VALUES (:id, 'g', :name, '', 't', 1, '[\"a\"]', 24, "
                    ":deadline, :closed, :now)"),
                    {"id": aid, "name": f"a{aid}", "deadline": now + timedelta(days=1), "closed": closed, "now": now})
            await conn.execute(text(
                "INSERT INTO jobs (id, guild_id, owner_id, dataset_id, name, params, status, priority, attempts, "
                "max_attempts, cancel_requested, assignment_id, created_at) "
                "VALUES (1, 'g', 'ann', 1, 'm', '{}', 'succeeded', 0, 1, 2, false, 1, :now)"), {"now": now})
            await conn.execute(text(
                "INSERT INTO scores (id, assignment_id, job_id, owner_id, model_name, macro_f1, accuracy, per_class_f1, "
                "baseline_macro_f1, params, layers, ms_per_message, submitted_at, created_at) "
                "VALUES (1, 1, 1, 'ann', 'm', 0.8, 0.75, '{\"a\": 0.8}', 0.6, 10, 2, 1.0, :now, :now)"), {"now": now})
        await database.upgrade()
        async with database.transaction() as s:
            score = (await s.execute(select(Score))).scalar_one()
            old, open_ = [await s.get(Assignment, i) for i in (1, 2)]
        assert (score.private_macro_f1, score.private_accuracy, score.private_per_class_f1,
                score.private_baseline_macro_f1, score.picked_at) == (0.8, 0.75, {"a": 0.8}, 0.6, None)
        assert old.revealed_at is not None and old.public_rows is None and old.max_picks == 2
        assert open_.revealed_at is None and open_.reveal_due_at == open_.deadline
    finally:
        await database.close()
