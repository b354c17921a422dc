"""Micro-batching for predictions: requests for one model that arrive within a few milliseconds of each
other share one forward pass, in one worker thread, so a burst of students is served at batch
throughput instead of queueing single messages behind each other.

No ``discord`` import: the service owns one :class:`MicroBatcher`, keyed by model directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Pending:
    texts: list[str] = field(default_factory=list)
    waiters: list[tuple[int, int, asyncio.Future]] = field(default_factory=list)  # (start, count, future)
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """Collects ``predict(key, texts)`` calls for ``window`` seconds (or until ``max_batch`` texts), then
    runs ``run(key, all_texts)`` once in a thread and hands each caller its own slice of the result.
    While a key's batch is running, its new requests gather and go together as soon as it ends, so
    under a steady stream batches grow with the load instead of queueing one message at a time.

    ``run`` is blocking (model loading and inference) and must return one result per text, in order.
    An exception from ``run`` reaches every caller of that batch.
    """

    def __init__(self, run: Callable[[Hashable, list[str]], list], window: float = 0.005, max_batch: int = 64):
        self.run, self.window, self.max_batch = run, window, max_batch
        self._pending: dict[Hashable, _Pending] = {}
        self._tasks: set[asyncio.Task] = set()  # running batches (the loop keeps only weak references)
        self._busy: set[Hashable] = set()  # keys with a batch running
        self.batches = 0  # forward passes run so far (for tests and the benchmark)

    async def predict(self, key: Hashable, texts: list[str]) -> list:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = self._pending.setdefault(key, _Pending())
        pending.waiters.append((len(pending.texts), len(texts), future))
        pending.texts.extend(texts)
        if key in self._busy:
            pass  # goes when the running batch ends
        elif len(pending.texts) >= self.max_batch:
            self._flush(key)
        elif pending.timer is None:
            pending.timer = loop.call_later(self.window, self._flush, key)
        return await future

    def _flush(self, key: Hashable) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        self.batches += 1
        self._busy.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Hashable, pending: _Pending) -> None:
        try:
            results = await asyncio.to_thread(self.run, key, pending.texts)
        except BaseException as exc:  # every caller of this batch gets the error
            for _, _, future in pending.waiters:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for start, count, future in pending.waiters:
                if not future.done():  # a caller that was cancelled meanwhile is simply skipped
                    future.set_result(results[start:start + count])
        finally:
            self._busy.discard(key)
            if key in self._pending:  # arrived while this batch ran: they have waited long enough
                self._flush(key)
