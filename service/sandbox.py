"""The door from the event loop: :func:`run` is :func:`trainer.sandbox.run_sync` without a thread.

The child is an asyncio subprocess, so a slow file holds no thread of the bot's pool (four such
files once took every thread and the bot missed Discord's 3-second deadline), and at most
``at_once`` children read files at a time (:class:`Door`), so a burst of uploads cannot take the
machine's memory either. See :mod:`trainer.sandbox` for the limits each child runs under.
"""

from __future__ import annotations

import asyncio
import os

from trainer.sandbox import DEFAULT_LIMITS, Limits, answer, request, too_slow


async def run(func, *args, limits: Limits = DEFAULT_LIMITS):
    """``func(*args)`` (a function of the trainer package, JSON arguments) in a sandboxed child."""
    argv, payload, env = request(func, list(args), limits)
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
                                                cwd=os.getcwd())
    try:
        out, err = await asyncio.wait_for(proc.communicate(payload), limits.seconds)
    except TimeoutError:
        raise too_slow(limits) from None
    finally:
        if proc.returncode is None:  # timed out, or the caller was cancelled: the child goes too
            proc.kill()
            await proc.wait()
    return answer(proc.returncode, out, err, limits)


class Door:
    """The service's way in: every parse of uploaded bytes through a sandboxed child, ``at_once`` at most."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, at_once: int = 2):
        self.limits = limits
        self._slots = asyncio.Semaphore(at_once)

    async def run(self, func, *args):
        async with self._slots:
            return await run(func, *args, limits=self.limits)
