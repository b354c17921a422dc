"""The fairness rule alone (a pure function): priority, round-robin between students, running limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.fairness import fair_order, next_job
from storage.queue import Candidate, QueueState

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def cands(*specs):
    """specs: (owner, priority) in submission order."""
    return [Candidate(i + 1, "g", owner, prio, T0 + timedelta(seconds=i)) for i, (owner, prio) in enumerate(specs)]


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
