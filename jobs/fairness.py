"""The order queued jobs start in: round-robin between classes, then within a class instructors first,
then round-robin between students."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from datetime import UTC, datetime

from storage import queue as q

_NEVER = datetime.min.replace(tzinfo=UTC)
_LATER = datetime.max.replace(tzinfo=UTC)


def _class_order(candidates: list[q.Candidate], state: q.QueueState) -> list[q.Candidate]:
    """One class's queued jobs in order.

    Higher priority first (the class's instructors). Among equal priority, round-robin between
    students: the student whose last job started longest ago (or never) goes next, then the next
    student, so one student's ten jobs cannot hold back a classmate's one. A student at their
    class's running limit waits behind everyone else. Within one student, oldest first.
    """
    per_student: dict[tuple[str, str], deque[q.Candidate]] = defaultdict(deque)
    for c in sorted(candidates, key=lambda c: (-c.priority, c.created_at, c.id)):
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
            heapq.heappush(heap, (-jobs[0].priority, blocked, _LATER, turn,
                                  jobs[0].created_at, jobs[0].id, student))
    return order


def fair_order(state: q.QueueState) -> list[q.Candidate]:
    """The order in which queued jobs would start.

    Slots are shared between classes first: the class with the fewest jobs running goes next, and
    among those the class whose last job started longest ago (or never), so two classes submitting
    at once alternate and one large or busy class cannot take every slot. A priority (an
    instructor's job, the dashboard's setting) orders jobs within its own class only. Within a class,
    `_class_order`.
    """
    per_class: dict[str, list[q.Candidate]] = defaultdict(list)
    for c in state.candidates:
        per_class[c.guild_id].append(c)
    running: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    for (guild, _), n in state.running.items():
        running[guild] += n
    for (guild, _), t in state.last_started.items():
        last[guild] = max(t, last.get(guild, _NEVER))
    queues = {guild: deque(_class_order(jobs, state)) for guild, jobs in per_class.items()}
    heap = [(running[g], last.get(g, _NEVER), 0, g) for g in queues]
    heapq.heapify(heap)
    order, turn = [], 0
    while heap:
        n, _, _, guild = heapq.heappop(heap)
        order.append(queues[guild].popleft())
        if queues[guild]:
            turn += 1  # this class just had a turn (a slot, as far as the order can tell)
            heapq.heappush(heap, (n + 1, _LATER, turn, guild))
    return order


def next_job(state: q.QueueState) -> list[q.Candidate]:
    """The jobs that may start now, best first (students under their running limit)."""
    return [c for c in fair_order(state)
            if state.running.get(c.student, 0) < state.max_running.get(c.guild_id, 1)]
