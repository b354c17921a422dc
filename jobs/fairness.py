"""The order queued jobs start in: instructors first, then round-robin between students."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from datetime import UTC, datetime

from storage import queue as q

_NEVER = datetime.min.replace(tzinfo=UTC)


def fair_order(state: q.QueueState) -> list[q.Candidate]:
    """The order in which queued jobs would start.

    Higher priority first (instructors' jobs). Among equal priority, round-robin between students:
    the student whose last job started longest ago (or never) goes next, then the next student, so
    one student's ten jobs cannot hold back a classmate's one. A student at their class's running
    limit waits behind everyone else. Within one student, oldest first.
    """
    per_student: dict[tuple[str, str], deque[q.Candidate]] = defaultdict(deque)
    for c in sorted(state.candidates, key=lambda c: (-c.priority, c.created_at, c.id)):
        per_student[c.student].append(c)
    heap = []
    for student, jobs in per_student.items():
        blocked = state.running.get(student, 0) >= state.max_running.get(student[0], 1)
        heap.append((-jobs[0].priority, blocked, state.last_started.get(student, _NEVER), 0,
                     jobs[0].created_at, jobs[0].id, student))
    heapq.heapify(heap)
    order, turn = [], 0
    while heap:
        _, blocked, _, _, _, _, student = heapq.heappop(heap)
        jobs = per_student[student]
        order.append(jobs.popleft())
        if jobs:
            turn += 1  # this student just had a turn: behind everyone who has not
            heapq.heappush(heap, (-jobs[0].priority, blocked, datetime.max.replace(tzinfo=UTC), turn,
                                  jobs[0].created_at, jobs[0].id, student))
    return order


def next_job(state: q.QueueState) -> list[q.Candidate]:
    """The jobs that may start now, best first (students under their running limit)."""
    return [c for c in fair_order(state)
            if state.running.get(c.student, 0) < state.max_running.get(c.guild_id, 1)]
