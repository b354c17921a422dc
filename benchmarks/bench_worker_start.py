"""How long a queued job's worker takes to be ready to train: started fresh (spawn: a new interpreter that
imports torch, transformers and the trainer) against forked from a server that imported them once
(forkserver, what LocalExecutor uses).

Each row starts a worker through LocalExecutor's start method with a target that imports the trainer's
pipeline (what ``jobs.worker.run_job`` imports before its first step) and exits; the time is from
``Process.start()`` to the process's exit, median of five, the first forkserver start (the server's
own imports) shown apart.

    .venv/bin/python benchmarks/bench_worker_start.py      # about a minute on 2 cores
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.executor import PRELOAD  # noqa: E402


def ready_to_train() -> None:
    import trainer.pipeline  # noqa: F401  (what a worker imports before it trains)


def one(ctx) -> float:
    started = time.perf_counter()
    p = ctx.Process(target=ready_to_train)
    p.start()
    p.join()
    assert p.exitcode == 0
    return time.perf_counter() - started


def main() -> int:
    rows = []
    spawn = multiprocessing.get_context("spawn")
    rows.append(("spawn (a fresh interpreter per job)", statistics.median(one(spawn) for _ in range(5)), None))
    fork = multiprocessing.get_context("forkserver")
    fork.set_forkserver_preload(list(PRELOAD))
    first = one(fork)
    rows.append(("forkserver, modules preloaded (LocalExecutor)", statistics.median(one(fork) for _ in range(5)),
                 first))
    print(f"{'start method':<48} {'s to ready, median of 5':>24} {'first start':>12}")
    for name, s, first_s in rows:
        print(f"{name:<48} {s:>24.2f} {'-' if first_s is None else f'{first_s:.2f}':>12}")
    print(f"\nforkserver is {rows[0][1] / rows[1][1]:.0f}x faster to a worker ready to train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
