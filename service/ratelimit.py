"""Per-student rate limits on what costs the class without queueing a job: ``/check`` (and a ``/train``
whose file is refused), ``/predict_file``, ``/predict``. A moving window per student and action, in
memory (the ``limits`` library), sized by the class's quotas."""

from __future__ import annotations

import time

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from trainer.progress import approx_duration

from .errors import RateLimited

# action -> (the class's quota, its window, what the student did)
RATE_LIMITS = {"check": ("checks_per_hour", "hour", "/check (and /train with a file that was refused)"),
               "predict_file": ("predict_files_per_hour", "hour", "/predict_file"),
               "predict": ("predictions_per_minute", "minute", "/predict")}


class _OneWindowPerStudent:
    """limits' items key a window by its amount too, so an instructor lowering a limit would hand every
    student a fresh window; here the key is the action and the student only."""

    def key_for(self, *identifiers) -> str:
        return "/".join(["tinytutor", *map(str, identifiers), self.GRANULARITY.name])


class _PerHour(_OneWindowPerStudent, RateLimitItemPerHour):
    pass


class _PerMinute(_OneWindowPerStudent, RateLimitItemPerMinute):
    pass


class RateLimits:
    def __init__(self):
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def take(self, action: str, guild_id: str, user_id: str, quotas, *, count: bool = True) -> None:
        """Count one ``action`` (a key of RATE_LIMITS) by this student (``count=False``: only check that one
        more would be allowed) under the class's ``quotas`` (a Classroom); RateLimited, saying when to try
        again, past the limit."""
        quota, per, what = RATE_LIMITS[action]
        amount = getattr(quotas, quota)
        item = (_PerHour if per == "hour" else _PerMinute)(amount)
        who = (action, str(guild_id), str(user_id))
        if await (self._limiter.hit if count else self._limiter.test)(item, *who):
            return
        reset_at, _ = await self._limiter.get_window_stats(item, *who)
        wait = max(1.0, reset_at - time.time())
        raise RateLimited(f"You have used {what} {amount:,} time{'s' if amount != 1 else ''} in the last {per} "
                          f"(class quota {quota} = {amount:,}). Try again in {approx_duration(wait)}.", retry_after=wait)
