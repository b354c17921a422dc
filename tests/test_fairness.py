"""The fairness rule (a pure function): round-robin between classes, then priority within a class and
round-robin between students, running limits; and two classes of 30 through the real dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from jobs.fairness import fair_order, next_job
from jobs.scheduler import Scheduler
from storage.models import QUEUED, SUCCEEDED, Classroom, Dataset, Job, utcnow
from storage.queue import Candidate, QueueState

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def cands(*specs, guild="g", first_id=1):
    """specs: (owner, priority) in submission order."""
    return [Candidate(first_id + i, guild, owner, prio, T0 + timedelta(seconds=i))
            for i, (owner, prio) in enumerate(specs)]


def owners(order):
    return [c.owner_id for c in order]


def test_one_students_many_jobs_do_not_hold_back_the_others():
    c = cands(("ann", 0), ("ann", 0), ("ann", 0), ("ann", 0), ("ben", 0), ("cat", 0), ("ben", 0))
    order = fair_order(QueueState(c, {}, {}, {"g": 1}))
    assert owners(order) == ["ann", "ben", "cat", "ann", "ben", "ann", "ann"]


def test_the_student_who_waited_longest_since_their_last_start_goes_first():
    c = cands(("ann", 0), ("ben", 0), ("cat", 0))
    last = {("g", "ann"): T0 - timedelta(minutes=1), ("g", "ben"): T0 - timedelta(minutes=30)}
    assert owners(fair_order(QueueState(c, {}, last, {"g": 1}))) == ["cat", "ben", "ann"]


def test_instructor_priority_comes_before_round_robin():
    c = cands(("ann", 0), ("ben", 0), ("teacher", 10), ("teacher", 10))
    assert owners(fair_order(QueueState(c, {}, {}, {"g": 1}))) == ["teacher", "teacher", "ann", "ben"]


def test_a_student_at_the_running_limit_waits_and_cannot_start():
    c = cands(("ann", 0), ("ben", 0))
    state = QueueState(c, {("g", "ann"): 1}, {}, {"g": 1})
    assert owners(fair_order(state)) == ["ben", "ann"]
    assert owners(next_job(state)) == ["ben"]
    state = QueueState(c, {("g", "ann"): 1}, {}, {"g": 2})  # the class allows two at once
    assert owners(next_job(state)) == ["ann", "ben"]


def test_classes_take_turns_and_a_priority_counts_only_within_its_own_class():
    # class "big" queued first, with an instructor's job at priority 10; class "small" queued after
    big = cands(("teacher", 10), ("ann", 0), ("ben", 0), ("cat", 0), guild="big")
    small = cands(("zoe", 0), ("yan", 0), guild="small", first_id=100)
    order = fair_order(QueueState(big + small, {}, {}, {"big": 1, "small": 1}))
    assert [(c.guild_id, c.owner_id) for c in order] == [
        ("big", "teacher"), ("small", "zoe"), ("big", "ann"), ("small", "yan"), ("big", "ben"), ("big", "cat")]


def test_the_class_with_fewer_jobs_running_gets_the_next_slot():
    big = cands(("ann", 0), ("ben", 0), guild="big")
    small = cands(("zoe", 0), guild="small", first_id=100)
    # two of big's students are already training (on other slots): small goes first though it started last
    running = {("big", "cat"): 1, ("big", "dan"): 1}
    last = {("big", "cat"): T0 - timedelta(hours=1), ("small", "zoe"): T0 - timedelta(minutes=1)}
    assert [c.guild_id for c in next_job(QueueState(big + small, running, last, {"big": 1, "small": 1}))] == [
        "small", "big", "big"]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_two_classes_of_thirty_submitting_at_once_alternate_on_one_slot(db, settings_for, db_url):
    """60 jobs queued at once, class A's first (its instructor's at priority 10); the real dispatcher
    claims them one at a time, each finishing before the next starts (one slot)."""
    settings = settings_for(db_url)
    async with db.transaction() as s:
        for guild in ("A", "B"):
            s.add(Classroom(guild_id=guild, name=guild, paused=False, **settings.quotas.model_dump()))
        await s.flush()
        ds = Dataset(guild_id="A", owner_id="a0", name="x.csv", sha256="0" * 64, path="datasets/x.csv", rows=1,
                     bytes=1, labels={}, lint={})
        s.add(ds)
        await s.flush()
        now = utcnow()
        for i, guild in enumerate(["A"] * 30 + ["B"] * 30):
            s.add(Job(guild_id=guild, owner_id=f"{guild.lower()}{i % 30}", dataset_id=ds.id, name=f"m{i}",
                      params={}, status=QUEUED, priority=10 if i == 0 else 0, attempts=0, max_attempts=2,
                      cancel_requested=False, created_at=now + timedelta(milliseconds=i)))
    sched = Scheduler(db, settings, slots=1)
    started = []
    while (job := await sched.claim_next()) is not None:
        started.append(job.guild_id)
        async with db.transaction() as s:  # it finishes: the slot is free again
            await s.execute(update(Job).where(Job.id == job.id).values(status=SUCCEEDED, finished_at=utcnow()))
    print("start order:", "".join(started))
    assert "".join(started) == "AB" * 30
