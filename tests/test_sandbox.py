"""The door: uploads are parsed in a child process within CPU, memory and wall-clock limits, never in the
bot's process, and a hostile file cannot stall the class."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fake_discord import User
from helpers import csv_bytes, stored_files, synthetic_rows
from sqlalchemy import func, select

from service import Caller, Service
from service.errors import InvalidDataset
from storage.db import Database
from storage.models import Dataset
from trainer.check import check_upload
from trainer.sandbox import Limits, request

SNIFFER_TRAP = b',"' * 32768 + b"\n"  # 64 KB: csv.Sniffer's regular expressions took 39 s on its first line


def test_the_child_gets_none_of_the_bots_secrets(monkeypatch):
    for name in ("DISCORD_TOKEN", "TINYTUTOR_WEB_SECRET", "TINYTUTOR_DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "secret")
    argv, payload, env = request(check_upload, [{}], Limits(cpu_seconds=3, memory_mb=300))
    assert not {k for k, v in env.items() if v == "secret"}
    assert env["HF_HUB_OFFLINE"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert argv[1:] == ["-m", "trainer.sandbox", "3", "300"]
    assert json.loads(payload)["call"] == "trainer.check:check_upload"
    with pytest.raises(ValueError, match="not a function the sandbox runs"):
        request(json.dumps, [], Limits())


def test_the_child_limits_itself_before_reading(tmp_path):
    """The limits are the child's own, set before it reads its request: what it would run is refused too."""
    out = subprocess.run([sys.executable, "-m", "trainer.sandbox", "7", "512"], capture_output=True, timeout=60,
                         input=json.dumps({"call": "os:system", "args": ["true"]}).encode())
    assert json.loads(out.stdout)["error"]["message"] == "os is not a module the sandbox runs"
    probe = subprocess.run([sys.executable, "-c", "import resource, runpy, sys; sys.argv = ['x', '7', '512']; "
                            "import trainer.sandbox as s; s.limit_self(7, 512); "
                            "print(resource.getrlimit(resource.RLIMIT_CPU)[0], resource.getrlimit(resource.RLIMIT_AS)[0])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["7", str(512 * 1024 * 1024)]


@pytest.fixture
async def service(tmp_path, settings_for):
    """``service(**sandbox)``: a Service whose door has these [sandbox] settings, and its settings and
    database. The door is the same on either database and these tests store nothing: SQLite alone."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'door.db'}"
    db = Database(url)
    await db.upgrade()

    def build(**sandbox):
        settings = settings_for(url, sandbox=sandbox, data={"max_rows": 10_000_000, "max_bytes": 50_000_000},
                                quotas={"max_rows": 10_000_000, "max_bytes": 50_000_000})
        return Service(db, settings), db

    yield build
    await db.close()


async def test_a_file_over_the_cpu_limit_is_refused_naming_it_and_nothing_is_stored(service, tmp_path):
    svc, db = service(cpu_seconds=1)
    content = csv_bytes((f"message number {i} about {i % 97}", f"l{i % 3}") for i in range(150_000))  # ~3 s of work
    caller = Caller("class-x", "ann")
    with pytest.raises(InvalidDataset, match=r"more than 1 s of processor time to read"):
        await svc.check(caller, content, "big.csv")
    with pytest.raises(InvalidDataset, match=r"processor time"):
        await svc.submit(caller, content, "big.csv", name="big")
    async with db.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(Dataset))).scalar_one() == 0
    assert stored_files(svc) == []


async def test_a_file_over_the_memory_limit_is_refused_naming_it(service):
    svc, _ = service(memory_mb=400)
    content = b"[" + b"{}," * 4_000_000 + b"{}]"  # 12 MB of JSON: four million dicts, ~1 GB once parsed
    with pytest.raises(InvalidDataset, match=r"needs more than 400 MB of memory"):
        await svc.check(Caller("class-m", "ann"), content, "dicts.json")


async def test_a_huge_csv_cell_and_a_huge_json_number_are_row_problems_not_crashes(service):
    svc, _ = service()
    rows = synthetic_rows(10)
    rows[2] = ("x " * 80_000, "food")  # 160,000 characters: past csv's default field limit of 131,072
    info = await svc.check(Caller("class-c", "ann"), csv_bytes(rows), "long.csv")
    assert info["rows"] == 30 and "long_documents" in [w["code"] for w in info["warnings"]]
    lines = [json.dumps({"text": t, "label": y}) for t, y in synthetic_rows(10)]
    lines[4] = '{"text": ' + "7" * 5000 + ', "label": "food"}'  # Python refuses ints past 4,300 digits
    info = await svc.check(Caller("class-c", "ann"), "\n".join(lines).encode(), "numbers.jsonl")
    assert info["rows"] == 30 and len(info["labels"]) == 3  # the number is read as the text it is


def test_tinytutor_check_reads_in_the_sandbox_and_answers_the_sniffer_trap_in_moments(tmp_path, monkeypatch,
                                                                                     capsys):
    from cli import main

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "trap.csv"
    path.write_bytes(SNIFFER_TRAP)
    assert main(["check", str(path), "--json"]) == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["errors"]
    path = tmp_path / "slow.csv"
    # about 7 MB: some 3 s of processor time to read on this machine, past a limit of 1 s whatever its speed
    path.write_bytes(csv_bytes((" ".join(f"message{i % 97} number {i} word{j}" for j in range(6)), f"l{i % 3}")
                               for i in range(40_000)))
    monkeypatch.setenv("TINYTUTOR_SANDBOX__CPU_SECONDS", "1")
    assert main(["check", str(path), "--json"]) == 2
    assert "processor time" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["errors"][0]["message"]


async def test_four_students_sending_the_sniffer_trap_at_once_leave_the_bot_answering(env):
    """Each gets a private refusal; another student's command sent meanwhile is answered in time (the fake
    Discord fails a callback later than 3 s, as Discord does)."""
    students = [User(900 + i, f"student{i}") for i in range(4)]
    payloads = []
    for s in students:
        opt, att = env.attachment_option("dataset", "trap.csv", SNIFFER_TRAP)
        payloads.append(env.send(s, "check", [opt], attachments=[att]))
    calls = await env.run(User(950, "carol"), "jobs")
    assert calls[0].status == 200
    for p in payloads:
        answer = await env.fake.wait(lambda p=p: [c for c in env.fake.calls_for(p) if c.path.startswith("/webhooks")],
                                     timeout=60, what="a /check answer")
        assert answer[0].ephemeral and "cannot be trained on" in answer[0].content and "nothing was stored" in \
            answer[0].content
    opt, att = env.attachment_option("dataset", "good.csv", csv_bytes(synthetic_rows(20)))
    calls = await env.run(students[0], "check", [opt], attachments=[att])
    assert "can be trained on: 60 examples" in [c for c in calls if c.path.startswith("/webhooks")][0].content


def test_the_door_is_what_the_service_reads_uploads_through():
    """No reader of uploaded bytes is called in the service's (or the bot's) own process."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for package in ("service", "bot", "web", "jobs"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for reader in ("read_table(", "load_dataset(", "check_file("):
                assert reader not in text, f"{path.relative_to(root)} calls {reader} outside the sandbox"

