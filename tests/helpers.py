"""What the tests share, in one place (fixtures are in conftest.py): small datasets, the people of the two
test classes (as the service and as Discord sees them), and one poller. No test module imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import inspect
import io
import os
import socket
import time
import uuid
from pathlib import Path

import pytest
from fake_discord import GUILD_ID, User

from service import Caller
from storage.db import Database
from storage.models import Job

# -- data ------------------------------------------------------------------------------------------

TOPIC_WORDS = {
    "sports": ["ball", "goal", "team", "match", "score", "player", "coach", "league", "win", "run"],
    "food": ["pizza", "bread", "cheese", "soup", "salad", "taste", "cook", "dinner", "lunch", "spicy"],
    "weather": ["rain", "sun", "snow", "cloud", "wind", "storm", "cold", "warm", "forecast", "sky"],
}
FILLER = ["i", "think", "the", "a", "today", "really", "very", "so", "we", "it", "is", "was"]


def write_csv(path: Path, rows: list[tuple[str, str]], header=("text", "label"), encoding="utf-8", delimiter=","):
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def synthetic_rows(n_per_class: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    """Short, learnable texts: each label has its own vocabulary mixed with shared filler words."""
    import random

    rng = random.Random(seed)
    rows = []
    for label, words in TOPIC_WORDS.items():
        seen = set()
        while len([r for r in rows if r[1] == label]) < n_per_class:
            text = " ".join(rng.sample(words, 3) + rng.sample(FILLER, 3))
            text = " ".join(rng.sample(text.split(), 6))
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    rng.shuffle(rows)
    return rows


def make_tiny_base(root: Path, layers: int = 4) -> Path:
    """A ``layers``-layer, 32-wide random BERT with a WordPiece vocabulary of the synthetic words, saved as
    safetensors in ``root``: an encoder without a head, read by mean pooling, like the embedded base."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {w for ws in TOPIC_WORDS.values() for w in ws} | set(FILLER)) + list("abcdefghijklmnopqrstuvwxyz")
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(root)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root)
    # ...and, like it, a sentence encoder read by mean pooling (sentence-transformers' declaration)
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 32, "pooling_mode_cls_token": false, '
                                                    '"pooling_mode_mean_tokens": true}')
    return root


def cli_config(tmp_path: Path, tiny_base: Path, **queue) -> Path:
    """A config.toml for the command-line tests: the tiny BERT as base, data in ``class-data``, fast
    queue timings (``queue`` adds or overrides [queue] keys)."""
    timings = {"dispatch_seconds": 0.2, "reap_seconds": 0.5, "heartbeat_seconds": 0.5} | queue
    path = tmp_path / "config.toml"
    path.write_text(f"""
[training]
base = "tiny"
layers = 2
epochs = 2
max_length = 16
threads = 1

[base_models]
tiny = "{tiny_base}"

[storage]
data_dir = "class-data"

[queue]
""" + "".join(f"{k} = {v}\n" for k, v in timings.items()), encoding="utf-8")
    return path


def csv_bytes(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows(rows)
    return buf.getvalue().encode()


GOOD = csv_bytes(synthetic_rows(20))  # three topics, 20 rows each
LEARNABLE = csv_bytes(synthetic_rows(80))  # enough for the tiny BERT to learn them (see conftest.learnable_csv)
TRAIN = GOOD  # an assignment's training file
MARK = "hiddenmarker"  # every hidden text carries it, so a leak is one search away


def hidden_rows(n_per_class: int = 8) -> list[tuple[str, str]]:
    return [(f"{text} {MARK}{i}", label) for i, (text, label) in enumerate(synthetic_rows(n_per_class, seed=99))]


HIDDEN = csv_bytes(hidden_rows())  # an assignment's hidden test set

# -- people ----------------------------------------------------------------------------------------
# Class A (server "class-a") as the service sees it, and one person of another class.
ALICE = Caller("class-a", "alice", name="Alice")
BOB = Caller("class-a", "bob", name="Bob")
CAROL = Caller("class-a", "carol", name="Carol")
TEACH = Caller("class-a", "teacher", instructor=True, name="Ms T")
MALLORY = Caller("class-b", "mallory", name="Mallory")  # another server
OTHER_TEACH = Caller("class-b", "t2", instructor=True, name="Mr B")

# The fake Discord's server (fake_discord.GUILD_ID), as its members arrive in interactions.
DISCORD_ALICE = User(101, "alice")
DISCORD_BOB = User(102, "bob")
TEACHER = User(103, "teacher", manage_guild=True)
TA = User(104, "ta", roles=(555,))  # the configured instructor role, without Manage Server


def caller_of(user: User) -> Caller:
    """The service's caller for a member of the fake Discord's server."""
    return Caller(str(GUILD_ID), str(user.id), instructor=user.manage_guild)


# -- waiting and looking -----------------------------------------------------------------------------


async def wait_for(predicate, timeout: float = 90, every: float = 0.2, what: str | None = None):
    """Poll ``predicate`` (a function, or an async one) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate.__name__}")
        await asyncio.sleep(every)


async def get_job(db: Database, job_id: int) -> Job:
    async with db.transaction() as s:
        return await s.get(Job, job_id)


def status_is(db, job_id, *statuses):
    async def check():
        job = await get_job(db, job_id)
        return job if job.status in statuses else None

    check.__name__ = f"job {job_id} in {statuses}"
    return check


def training(db, job_id):
    async def check():
        job = await get_job(db, job_id)
        return job if job.status == "running" and (job.progress or {}).get("stage") == "training" else None

    check.__name__ = f"job {job_id} training"
    return check


class Clock:
    """A clock a test moves by hand (``Service(..., clock=Clock())``): now, until ``advance`` says otherwise."""

    def __init__(self):
        from storage.models import utcnow

        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored_files(service) -> list[Path]:
    """Every file the service stored (the database's own files aside)."""
    return [p for p in service.store.root.rglob("*") if p.is_file() and p.suffix != ".db" and "-wal" not in p.name
            and "-shm" not in p.name and "-journal" not in p.name]


# -- assignments -------------------------------------------------------------------------------------

PRIVATE_PROBE = 0.5757  # the frozen base + probe on the private part, in every ``scored`` submission


async def scored(service, db, caller, name, macro_f1, params, ms, assignment_id, private=None, assignment="topics"):
    """A finished submission's scores on both parts, as the worker would record them (no training needed
    for the boards); ``private`` defaults to the public macro-F1."""
    from storage.models import Job, Report, Score

    sub = await service.submit(caller, TRAIN, "t.csv", name=name, assignment=assignment)
    private = macro_f1 if private is None else private
    async with db.transaction() as s:
        job = await s.get(Job, sub.job.id)
        job.status = "succeeded"
        s.add(Score(assignment_id=assignment_id, job_id=job.id, owner_id=caller.user_id, model_name=name,
                    macro_f1=macro_f1, accuracy=macro_f1, per_class_f1={"food": macro_f1}, baseline_macro_f1=0.6,
                    private_macro_f1=private, private_accuracy=private, private_per_class_f1={"food": private},
                    private_baseline_macro_f1=0.55, probe_macro_f1=0.65, private_probe_macro_f1=PRIVATE_PROBE,
                    params=params, layers=params // 1_000_000, ms_per_message=ms, submitted_at=job.created_at))
        s.add(Report(job_id=job.id, metrics={"macro_f1": macro_f1}, report_text="", confusion_png="", curve_png=""))
    return sub.job.id


# -- databases ---------------------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("TINYTUTOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path):
    """A fresh, empty database URL (``kind`` sqlite: a file under tmp_path; postgresql: a new database,
    dropped afterwards; the test is skipped, saying why, where PostgreSQL is not reachable)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tinytutor.db'}"
        return
    import asyncpg

    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, Exception) as exc:  # noqa: B014 - asyncpg raises several kinds when nothing listens
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"tinytutor_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
