"""The door: hostile uploads through the service, before (parsed in a thread of the bot) and now (the sandbox).

1. Four students send the 64 KB sniffer trap (a first line of ',"' x 32,768) to /check at once, while
   the event loop ticks every 50 ms as the bot's would: how long each waits for its answer and the
   loop's worst lag. "Before" is what the bot did: csv.Sniffer on the first line, in the default
   thread pool (the same call the old reader made); "now" is Service.check through the sandbox.
2. Memory: a 1 MB XLSX whose shared strings expand to 900 MB, and a 20 MB CSV of short rows (refused
   for its rows by the default limits, then read whole with the row limit raised), through
   Service.check: the answer, its time, the largest child's peak memory so far and how much the bot's
   own resident memory grew.

    .venv/bin/python benchmarks/bench_door.py        # about 3 minutes on 2 cores (the "before" row is most of it)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.settings import load_settings  # noqa: E402
from service import Caller, Service  # noqa: E402
from storage.db import Database  # noqa: E402

TRAP = b',"' * 32768 + b"\n"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


async def ticking(stop: asyncio.Event) -> float:
    """The loop's worst lag (ms) while ``stop`` is not set, ticking every 50 ms."""
    worst = 0.0
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.05)
        worst = max(worst, (time.perf_counter() - start - 0.05) * 1000)
    return worst


async def four_at_once(check) -> tuple[list[float], float]:
    stop = asyncio.Event()
    ticker = asyncio.create_task(ticking(stop))
    started = time.perf_counter()

    async def one(i):
        with contextlib.suppress(Exception):  # a refusal is the expected answer
            await check(i)
        return time.perf_counter() - started

    waits = await asyncio.gather(*(one(i) for i in range(4)))
    stop.set()
    return list(waits), await ticker


def xlsx_bomb(path: Path, expanded: int = 900_000_000) -> Path:
    """A valid-looking workbook whose sharedStrings.xml expands to ``expanded`` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/content-types"/>')
        zf.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
                    'spreadsheetml/2006/main"><sheets><sheet name="a" sheetId="1"/></sheets></workbook>')
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            chunk = b"<si><t>" + b"a" * 1000 + b"</t></si>"
            for _ in range(expanded // len(chunk)):
                f.write(chunk)
            f.write(b"</sst>")
    return path


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tinytutor-bench-door-"))
    settings = load_settings().changed(storage={"data_dir": str(work / "data")})
    url = f"sqlite+aiosqlite:///{work / 'door.db'}"
    db = Database(url)
    await db.upgrade()
    svc = Service(db, settings)
    await svc.set_quotas(Caller("bench", "teach", instructor=True), max_bytes=settings.data.max_bytes,
                         max_rows=settings.data.max_rows)

    def sniff_in_thread(_):
        return asyncio.to_thread(lambda: csv.Sniffer().sniff(TRAP.decode().split("\n", 1)[0] + "\n",
                                                             delimiters=",\t;|"))

    def check_in_sandbox(i):
        return svc.check(Caller("bench", f"student{i}"), TRAP, "trap.csv")

    print(f"{os.cpu_count()} cores; [sandbox] {settings.sandbox.model_dump()}\n")
    print("### 1. Four students send the 64 KB sniffer trap to /check at once\n")
    print("| how the file is read | answers after (s) | worst event-loop lag (ms) |")
    print("|---|---|---:|")
    for name, check in (("before: csv.Sniffer in the bot's thread pool", sniff_in_thread),
                        ("now: the sandbox (Service.check)", check_in_sandbox)):
        waits, lag = await four_at_once(check)
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in sorted(waits))} | {lag:.0f} |", flush=True)

    print("\n### 2. Memory: hostile and large files through Service.check\n")
    print("| file | answer | seconds | largest child's peak MB | bot's RSS growth MB |")
    print("|---|---|---:|---:|---:|")
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["text", "label"])
    i = 0
    while rows.tell() < 20_000_000 - 100:
        w.writerow([f"a short chat line number {i} about topic {i % 50}", f"label{i % 5}"])
        i += 1
    files = {"XLSX: 1 MB zip, 900 MB of shared strings": (xlsx_bomb(work / "bomb.xlsx").read_bytes(), "bomb.xlsx"),
             f"CSV: 20 MB, {i:,} short rows": (rows.getvalue().encode()[:settings.data.max_bytes], "big.csv")}
    files["the same CSV with [data].max_rows = 1,000,000 (read whole)"] = files[f"CSV: 20 MB, {i:,} short rows"]
    for name, (content, filename) in files.items():
        if "read whole" in name:
            svc = Service(db, settings.changed(data={"max_rows": 1_000_000}))
            await svc.set_quotas(Caller("bench", "teach", instructor=True), max_rows=1_000_000)
        before = rss_mb()
        started = time.perf_counter()
        try:
            info = await svc.check(Caller("bench", "ann"), content, filename)
            answer = f"read: {info['rows']:,} rows"
        except Exception as exc:  # noqa: BLE001 - a refusal is an answer here
            answer = f"refused: {str(exc).splitlines()[-1][:90]}"
        print(f"| {name} ({len(content) / 1e6:.1f} MB) | {answer} | {time.perf_counter() - started:.1f} | "
              f"{children_peak_mb():.0f} | {rss_mb() - before:+.0f} |", flush=True)
    await db.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
