"""Queue benchmarks, measured side by side in one run; prints markdown tables.

1. Dispatcher cost: the time ``Scheduler.claim_next`` takes (read the queue, order it fairly, claim one
   job atomically) with 20 and with 200 queued jobs from 30 students, on SQLite and on PostgreSQL.
2. Event-loop lag while a worker process trains a real job (embedded MiniLM on the chatterbot example)
   and /predict-style requests arrive every 100 ms, with the class queue (200 queued jobs) read every
   second: predictions through the service (in a thread, as the bot does) against the same
   predictions run directly on the event loop; and, in a third row, with the instructor dashboard
   served in the same loop and a browser-like client (another thread) fetching the live queue
   fragment (all 200 queued jobs) every 500 ms and the whole queue page every 2 s.

    .venv/bin/python benchmarks/bench_queue.py        # about 3 minutes on 2 CPU cores

Targets (issue 3): claim under 50 ms; loop lag p99 under 50 ms (issue 12: also with the dashboard open).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import update  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from core.settings import Settings  # noqa: E402
from jobs.scheduler import Scheduler  # noqa: E402
from service import Caller, Service  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import QUEUED, Classroom, Dataset, Job, utcnow  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

PG = os.environ.get("TINYTUTOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
STUDENTS = 30
GUILD = "bench"
TEACHER = Caller(GUILD, "teacher", instructor=True)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def fill_queue(db: Database, settings: Settings, n_jobs: int, dataset_path: str = "datasets/x.csv") -> int:
    """A class with 30 students and ``n_jobs`` queued jobs, submitted round the class."""
    async with db.transaction() as s:
        if await s.get(Classroom, GUILD) is None:
            s.add(Classroom(guild_id=GUILD, name="bench", paused=False, **settings.quotas.model_dump()))
            await s.flush()
        ds = Dataset(guild_id=GUILD, owner_id="s0", name="x.csv", sha256="0" * 64, path=dataset_path, rows=1,
                     bytes=1, labels={}, lint={})
        s.add(ds)
        await s.flush()
        now = utcnow()
        for i in range(n_jobs):
            s.add(Job(guild_id=GUILD, owner_id=f"s{i % STUDENTS}", dataset_id=ds.id, name=f"m{i}", params={},
                      status=QUEUED, priority=0, attempts=0, max_attempts=2, cancel_requested=False,
                      created_at=now + timedelta(milliseconds=i)))
        return ds.id


async def claim_cost(url: str, n_jobs: int, repeats: int) -> list[float]:
    """Milliseconds per claim; each claimed job goes back to the queue so the depth stays ``n_jobs``."""
    settings = Settings()
    db = Database(url)
    await db.upgrade()
    await fill_queue(db, settings, n_jobs)
    sched = Scheduler(db, settings, slots=1)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        job = await sched.claim_next()
        times.append((time.perf_counter() - start) * 1000)
        assert job is not None
        async with db.transaction() as s:  # put it back (and forget it started, so the order keeps turning)
            await s.execute(update(Job).where(Job.id == job.id).values(status=QUEUED, lease=None, attempts=0))
    await db.close()
    return times[3:]


async def pg_database():
    import uuid

    import asyncpg

    admin = await asyncpg.connect(PG, timeout=3)
    name = f"tinytutor_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name, PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


async def drop_pg(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG, timeout=3)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def part1(tmp: Path, repeats: int) -> list[tuple]:
    rows = []
    backends = [("SQLite", lambda n: f"sqlite+aiosqlite:///{tmp / f'claim-{n}.db'}")]
    pg_names = []
    try:
        import asyncpg

        (await asyncpg.connect(PG, timeout=3)).terminate()
        backends.append(("PostgreSQL", None))
    except Exception as exc:  # noqa: BLE001
        print(f"(PostgreSQL skipped: {exc})", file=sys.stderr)
    for backend, make_url in backends:
        for depth in (20, 200):
            if make_url is None:
                name, url = await pg_database()
                pg_names.append(name)
            else:
                url = make_url(depth)
            t = await claim_cost(url, depth, repeats)
            rows.append((backend, depth, statistics.median(t), pct(t, 99), max(t)))
    for name in pg_names:
        await drop_pg(name)
    return rows


async def part2(tmp: Path, seconds: float, epochs: int) -> list[tuple]:
    from trainer.examples import write_chatterbot_csv
    from trainer.predict import PredictorCache

    settings = Settings().changed(
        storage={"data_dir": str(tmp / "data"), "database_url": f"sqlite+aiosqlite:///{tmp / 'data' / 'lag.db'}"},
        training={"epochs": epochs, "patience": epochs},  # no early stop: the worker must train through both measurements
        queue={"dispatch_seconds": 0.5, "reap_seconds": 1.0},
        web={"public_url": f"http://127.0.0.1:{free_port()}"})  # the dashboard's, for the last row
    db = Database(settings.database_url)
    await db.upgrade()
    service = Service(db, settings, predictors=PredictorCache(2))
    await service.set_quotas(TEACHER, max_queued_per_student=500, max_jobs_per_day=500)
    example = write_chatterbot_csv(tmp / "chat.csv")
    data = example.read_bytes()
    sched = Scheduler(db, settings, slots=1)

    async def run_until_done(job_id):
        while True:
            await sched.dispatch()
            await sched.reap()
            v = await service.job(TEACHER, job_id)
            if v.status not in ("queued", "running"):
                return v
            await asyncio.sleep(0.5)

    print("training a model to predict with (1 epoch) ...", file=sys.stderr)
    first = await service.submit(TEACHER, data, "chat.csv", name="predictor", params={"epochs": 1})
    done = await run_until_done(first.job.id)
    assert done.status == "succeeded", done.error
    model_id = done.model_id
    texts = ["How do I write a for loop in Python?", "I feel so happy today", "Who wrote Hamlet?"]
    await service.predict(TEACHER, model_id, texts[:1])  # load it once, as a warm bot would have

    job = await service.submit(TEACHER, data, "chat.csv", name="training-now")
    await fill_queue(db, settings, 200, (await _dataset_path(db, job.dataset_id)))
    await service.set_paused(TEACHER, True)  # the 200 wait; the one training job is claimed first
    async with db.transaction() as s:
        await s.execute(update(Classroom).where(Classroom.guild_id == GUILD).values(paused=False))
        await s.execute(update(Job).where(Job.id != job.job.id, Job.status == QUEUED).values(priority=-1))
    await sched.start()
    print("waiting for the worker to start training ...", file=sys.stderr)
    while ((await service.job(TEACHER, job.job.id)).progress or {}).get("stage") != "training":
        await asyncio.sleep(0.2)

    predictor = service.predictors.get(service.store.path(await _model_path(db, model_id)))
    results = []
    rows = (("service.predict in a thread (ours)", True, False), ("predict on the event loop (naive)", False, False),
            ("ours, with the dashboard open and refreshing", True, True))
    for label, in_thread, dashboard in rows:
        browser = await open_dashboard(service, settings) if dashboard else None
        try:
            n, lags = await measure_lag(service, predictor, model_id, texts, in_thread, seconds, browser)
        finally:
            if browser is not None:
                await browser.close()
        state = (await service.job(TEACHER, job.job.id)).status
        pages = f"; {len(browser.times)} pages, p50 {statistics.median(browser.times):.0f} ms, p99 " \
                f"{pct(browser.times, 99):.0f} ms" if browser else ""
        results.append((label, n, statistics.median(lags), pct(lags, 99), max(lags), state + pages))
    if (await service.job(TEACHER, job.job.id)).status == "running":
        await service.cancel(TEACHER, job.job.id)
    await asyncio.sleep(2 * settings.queue.dispatch_seconds + settings.queue.reap_seconds)
    await sched.stop(requeue=False)
    await db.close()
    return results


class Browser:
    """The dashboard served in this loop, and a client in its own thread fetching it as the page's script
    does (the live fragment every 500 ms, the whole page every 2 s), timing each response."""

    def __init__(self, runner, url: str, cookie: str):
        self.runner, self.url, self.cookie = runner, url, cookie
        self.times: list[float] = []
        self.stop = False
        self.thread = None

    def start(self) -> None:
        import threading

        self.thread = threading.Thread(target=self._fetch, daemon=True)
        self.thread.start()

    def _fetch(self) -> None:
        import urllib.request

        i = 0
        while not self.stop:
            path = "/queue" if i % 4 == 0 else "/queue/live"
            start = time.perf_counter()
            req = urllib.request.Request(self.url + path, headers={"Cookie": f"tt_session={self.cookie}"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200 and r.read()
            self.times.append((time.perf_counter() - start) * 1000)
            i += 1
            time.sleep(0.5)

    async def close(self) -> None:
        self.stop = True
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join)
        await self.runner.cleanup()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def open_dashboard(service, settings) -> Browser:
    from web.app import make_app, start_site

    os.environ.setdefault(settings.web.secret_env, "bench secret, not for production use")
    runner = await start_site(make_app(service, settings), "127.0.0.1", urlsplit(settings.web.public_url).port)
    link = await service.mint_link(TEACHER)
    cookie = await service.redeem_link(link.split("token=", 1)[1])
    return Browser(runner, settings.web.public_url, cookie)


async def measure_lag(service, predictor, model_id, texts, in_thread: bool, seconds: float, browser=None):
    """Run the monitor, the prediction requests and the instructor's queue view for ``seconds`` (and the
    dashboard's client, when given)."""
    lags, served, stop = [], [], asyncio.Event()

    async def monitor():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - t - 0.005) * 1000)

    async def requests():
        i = 0
        while not stop.is_set():
            text = texts[i % len(texts)]
            if in_thread:
                await service.predict(TEACHER, model_id, [text])
            else:
                predictor.predict([text])
            served.append(1)
            i += 1
            await asyncio.sleep(0.1)

    async def instructor():
        while not stop.is_set():
            await service.class_queue(TEACHER)
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(c()) for c in (monitor, requests, instructor)]
    if browser is not None:
        browser.start()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return len(served), lags


async def _dataset_path(db, dataset_id):
    async with db.transaction() as s:
        return (await s.get(Dataset, dataset_id)).path


async def _model_path(db, model_id):
    from storage.models import Model

    async with db.transaction() as s:
        return (await s.get(Model, model_id)).path


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=200, help="claims measured per row")
    ap.add_argument("--seconds", type=float, default=20, help="lag measured per row, while a job trains")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the job that trains meanwhile (no early stop)")
    ap.add_argument("--claims-only", action="store_true", help="part 1 only (seconds)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows1 = await part1(tmp, args.repeats)
        rows2 = [] if args.claims_only else await part2(tmp, args.seconds, args.epochs)
    print("\n### 1. Claiming the next job (Scheduler.claim_next), 30 students\n")
    print("| database | queued jobs | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for backend, depth, p50, p99, mx in rows1:
        print(f"| {backend} | {depth} | {p50:.1f} | {p99:.1f} | {mx:.1f} |")
    if not rows2:
        return
    print("\n### 2. Event-loop lag while a worker trains, predictions every 100 ms, /queue every second\n")
    print(f"| predictions | served in {args.seconds:.0f} s | lag p50 ms | lag p99 ms | lag max ms | job |")
    print("|---|---:|---:|---:|---:|---|")
    for label, n, p50, p99, mx, state in rows2:
        print(f"| {label} | {n} | {p50:.2f} | {p99:.1f} | {mx:.1f} | {state} |")
    ours, naive = rows2[0][3], rows2[1][3]
    print(f"\nloop lag p99: {naive / max(ours, 1e-9):.1f}x lower with predictions off the loop")


if __name__ == "__main__":
    asyncio.run(main())
