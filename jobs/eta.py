"""Where queued jobs stand and when results are expected: positions in the fair start order, and
ETAs from the slots, the running jobs' own estimates and the class's typical job length."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import queue as q
from storage.models import QUEUED, RUNNING, SUCCEEDED, Job

from .fairness import fair_order

DEFAULT_JOB_SECONDS = 180.0  # the guess before the class has finished any job


@dataclass(frozen=True)
class Standing:
    position: int | None  # 1 = next to start; None unless queued (and the class not paused)
    eta_seconds: float | None  # until the result is expected


async def standings(s: AsyncSession, jobs: list[Job], slots: int) -> dict[int, Standing]:
    """Each job's position and ETA. A queued job starts when its slot's turn comes (slots free up a
    typical job length apart), then runs a typical job length; a running job reports its own ETA."""
    positions: dict[int, int] = {}
    if any(j.status == QUEUED for j in jobs):
        positions = {c.id: i + 1 for i, c in enumerate(fair_order(await q.queue_state(s)))}
    avg = await typical_seconds(s)
    running_left = []
    for j in jobs:
        if j.status == RUNNING:
            left = (j.progress or {}).get("eta_seconds")
            running_left.append(avg if left is None else left)
    free_at = sorted(running_left)[:slots] + [0.0] * max(0, slots - len(running_left))
    out = {}
    for j in jobs:
        pos = positions.get(j.id) if j.status == QUEUED else None
        if pos is not None:
            eta = free_at[(pos - 1) % slots] + ((pos - 1) // slots) * avg + avg
        elif j.status == RUNNING:
            eta = (j.progress or {}).get("eta_seconds")
        else:
            eta = None
        out[j.id] = Standing(pos, eta)
    return out


async def typical_seconds(s: AsyncSession) -> float:
    """The mean run time of the last 20 jobs that succeeded."""
    rows = (await s.execute(select(Job.started_at, Job.finished_at).where(
        Job.status == SUCCEEDED, Job.started_at.is_not(None)).order_by(Job.id.desc()).limit(20))).all()
    spans = [(b - a).total_seconds() for a, b in rows if a and b]
    return sum(spans) / len(spans) if spans else DEFAULT_JOB_SECONDS
