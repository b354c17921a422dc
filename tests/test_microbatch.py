"""Micro-batching: requests that arrive together share one forward pass; each caller gets its own answers."""

import asyncio
import threading

import pytest

from service.microbatch import MicroBatcher


class Recorder:
    """A blocking ``run`` that records each batch it is given and answers text -> text.upper()."""

    def __init__(self, fail: bool = False):
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()
        self.fail = fail

    def __call__(self, key, texts):
        self.batches.append(list(texts))
        self.threads.add(threading.get_ident())
        if self.fail:
            raise RuntimeError("model files are damaged")
        return [f"{key}:{t.upper()}" for t in texts]


async def test_requests_within_the_window_share_one_batch_in_a_thread():
    run = Recorder()
    b = MicroBatcher(run, window=0.02)
    results = await asyncio.gather(*(b.predict("m", [f"t{i}"]) for i in range(10)))
    assert results == [[f"m:T{i}"] for i in range(10)]
    assert run.batches == [[f"t{i}" for i in range(10)]]
    assert threading.get_ident() not in run.threads  # never on the event loop's thread


async def test_each_caller_gets_its_own_slice_when_callers_send_several_texts():
    run = Recorder()
    b = MicroBatcher(run, window=0.02)
    a, one, c = await asyncio.gather(b.predict("m", ["a", "b"]), b.predict("m", ["c"]), b.predict("m", ["d", "e", "f"]))
    assert (a, one, c) == (["m:A", "m:B"], ["m:C"], ["m:D", "m:E", "m:F"])
    assert len(run.batches) == 1


async def test_different_models_are_never_mixed_in_one_batch():
    run = Recorder()
    b = MicroBatcher(run, window=0.02)
    x, y = await asyncio.gather(b.predict("x", ["1"]), b.predict("y", ["2"]))
    assert x == ["x:1"] and y == ["y:2"]
    assert sorted(map(tuple, run.batches)) == [("1",), ("2",)]


async def test_a_full_batch_goes_at_once_without_waiting_for_the_window():
    run = Recorder()
    b = MicroBatcher(run, window=10.0, max_batch=4)
    out = await asyncio.wait_for(asyncio.gather(*(b.predict("m", [str(i)]) for i in range(4))), timeout=2)
    assert len(out) == 4 and run.batches == [["0", "1", "2", "3"]]


async def test_requests_after_a_batch_left_start_the_next_one():
    run = Recorder()
    b = MicroBatcher(run, window=0.005)
    await b.predict("m", ["first"])
    await b.predict("m", ["second"])
    assert run.batches == [["first"], ["second"]]


async def test_an_error_reaches_every_caller_of_the_batch():
    b = MicroBatcher(Recorder(fail=True), window=0.02)
    results = await asyncio.gather(b.predict("m", ["a"]), b.predict("m", ["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "damaged" in str(r) for r in results)


async def test_a_cancelled_caller_does_not_break_the_others():
    b = MicroBatcher(Recorder(), window=0.05)
    gone = asyncio.create_task(b.predict("m", ["gone"]))
    kept = asyncio.create_task(b.predict("m", ["kept"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    assert await kept == ["m:KEPT"]
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_requests_arriving_while_a_batch_runs_go_together_next():
    started, release = threading.Event(), threading.Event()
    batches = []

    def slow(key, texts):
        batches.append(list(texts))
        if len(batches) == 1:
            started.set()
            release.wait(5)
        return texts

    b = MicroBatcher(slow, window=0.001)
    first = asyncio.create_task(b.predict("m", ["a"]))
    await asyncio.to_thread(started.wait, 5)
    later = [asyncio.create_task(b.predict("m", [t])) for t in "bcd"]
    await asyncio.sleep(0.05)  # far past the window: they wait for the running batch, not for a timer
    assert batches == [["a"]]
    release.set()
    assert await first == ["a"] and [await t for t in later] == [["b"], ["c"], ["d"]]
    assert batches == [["a"], ["b", "c", "d"]]
