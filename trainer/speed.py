"""``tinytutor speed``: one message and batches through PyTorch fp32 and through the served path, in one run.

The two paths are timed alternately, message by message, so whatever else the machine is doing
hits both alike. ``under_load`` first starts a real training run (the embedded MiniLM on the
chatterbot example, every core, at the queue workers' nice value, as a worker trains beside the
bot) and measures while it trains: that is where students' predictions are served.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path

from .predict import Predictor

BATCH = 64


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def chat_messages(n: int, seed: int = 0) -> list[str]:
    """``n`` real chat lines (chatterbot-corpus, every English topic), in a seeded random order."""
    from .examples import chatterbot_rows, english_topics

    texts = [t for t, _ in chatterbot_rows(english_topics())]
    random.Random(seed).shuffle(texts)
    return (texts * (n // len(texts) + 1))[:n]


def _train_forever(ready, out: str, nice: int) -> None:
    """A training process for the load: the real pipeline, many epochs, until it is terminated."""
    import os

    if nice:
        os.nice(nice)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from core.spec import TrainSpec

    from .examples import write_chatterbot_csv
    from .pipeline import run_training

    data = write_chatterbot_csv(Path(out) / "load.csv")

    def progress(p):
        if p.stage == "training":
            ready.set()

    run_training(TrainSpec(data_path=str(data), out_dir=str(Path(out) / "model"), epochs=200, patience=200),
                 progress)


class TrainingLoad:
    """A context manager that keeps a training process running (spawned; terminated on exit), at the
    ``nice`` value queue workers run at (``[queue].worker_nice``), or 0 for a plain ``tinytutor train``."""

    def __init__(self, nice: int = 0):
        self.nice = nice

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")
        self._tmp = tempfile.TemporaryDirectory(prefix="tinytutor-load-")
        self._ready = ctx.Event()
        self._proc = ctx.Process(target=_train_forever, args=(self._ready, self._tmp.name, self.nice),
                                 daemon=True)
        self._proc.start()
        if not self._ready.wait(180):
            self.__exit__(None, None, None)
            raise RuntimeError("the training process for --under-load did not start training within 180 s")
        time.sleep(2.0)  # past the first steps' warm-up
        return self

    def __exit__(self, *exc) -> None:
        self._proc.terminate()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._tmp.cleanup()


def compare(predictors: dict[str, Predictor], texts: list[str], batch_size: int = BATCH, block: int = 25) -> dict:
    """Latency of single messages and throughput of batches for each predictor, measured in rotation.

    Paths take turns in blocks of ``block`` messages rather than message by message: PyTorch's
    OpenMP threads keep spinning for a while after each call, and would be timed against whichever
    path ran next.
    """
    for t in texts[:5]:  # warm-up: first calls allocate
        for p in predictors.values():
            p.predict([t])
    names = list(predictors)
    single: dict[str, list[float]] = {k: [] for k in names}
    busy = dict.fromkeys(names, 0.0)
    blocks = [texts[i:i + block] for i in range(0, len(texts), block)]
    for b, chunk in enumerate(blocks):
        for key in names[b % len(names):] + names[:b % len(names)]:  # each goes first in turn
            for t in chunk:
                start = time.perf_counter()
                predictors[key].predict([t])
                single[key].append((time.perf_counter() - start) * 1000)
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    for b, batch in enumerate(batches):
        for key in names[b % len(names):] + names[:b % len(names)]:
            start = time.perf_counter()
            predictors[key].predict(batch)
            busy[key] += time.perf_counter() - start
    n = sum(len(b) for b in batches)
    return {key: {"p50_ms": round(statistics.median(v), 3), "p90_ms": round(_percentile(v, 0.9), 3),
                  "msgs_per_s": round(n / busy[key], 1)} for key, v in single.items()}


def measure(model_dir: str | Path, under_load: bool = False, messages: int = 200, threads: int = 1,
            load_nice: int = 10) -> dict:
    """What ``tinytutor speed --json`` prints: ``fp32``, ``served`` (p50_ms, p90_ms, msgs_per_s) and ``engine``."""
    fp32 = Predictor(model_dir, engine="torch")  # today's path: PyTorch with its default threads
    served = Predictor(model_dir, threads=threads)
    texts = chat_messages(max(messages, BATCH))
    with TrainingLoad(load_nice) if under_load else contextlib.nullcontext():
        result = compare({"fp32": fp32, "served": served}, texts)
    return {**result, "engine": served.engine, "messages": len(texts), "batch_size": BATCH, "under_load": under_load,
            "load_nice": load_nice if under_load else None, "threads": threads,
            "speedup_p50": round(result["fp32"]["p50_ms"] / result["served"]["p50_ms"], 2),
            "speedup_batch": round(result["served"]["msgs_per_s"] / result["fp32"]["msgs_per_s"], 2)}
