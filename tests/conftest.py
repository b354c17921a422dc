"""Shared fixtures: a tiny random BERT (fast unit tests) and small real datasets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from discord_env import env  # noqa: F401  (the fake-Discord fixture, for every test module)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


@pytest.fixture
def tiny_base(tmp_path_factory) -> Path:
    """A 4-layer tiny BERT (:func:`make_tiny_base`), new for each test."""
    return make_tiny_base(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "topics.csv", synthetic_rows())


@pytest.fixture
def learnable_csv(tmp_path) -> Path:
    """Twice the rows, for tests that assert a score. Trained from random weights on 84 examples the
    tiny BERT missed a whole class for 1 to 3 seeds in 5, whatever the recipe; on 168, at lr 1e-3 for
    12 epochs in batches of 8, it learned all three classes for each of 5 seeds, with 2 or 4 layers."""
    return write_csv(tmp_path / "learnable.csv", synthetic_rows(80))


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


# -- databases: every storage and queue test runs on SQLite and on PostgreSQL ------------------------

PG_ADMIN_URL = os.environ.get("TINYTUTOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_admin():
    import asyncpg

    return await asyncpg.connect(PG_ADMIN_URL, timeout=3)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tinytutor.db'}"
        return
    import uuid

    try:
        admin = await _pg_admin()
    except (OSError, Exception) as exc:  # noqa: B014 - asyncpg raises several kinds when nothing listens
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"tinytutor_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await _pg_admin()
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def db(db_url):
    """The schema at head through Alembic, as the app creates it."""
    from storage.db import Database

    database = Database(db_url)
    await database.upgrade()
    yield database
    await database.close()


@pytest.fixture
def settings_for(tmp_path, tiny_base):
    """Settings for the queue tests: data under tmp_path, the tiny BERT as base, fast timings."""
    from core.settings import Settings

    def make(db_url: str, **queue):
        s = Settings()
        s.storage.data_dir = str(tmp_path / "data")
        s.storage.database_url = db_url
        s.base_models = {"tiny": str(tiny_base)}
        s.training = {"base": "tiny", "layers": 2, "epochs": 2, "batch_size": 16, "threads": 1, "max_length": 16}
        s.queue.dispatch_seconds = 0.2
        s.queue.reap_seconds = 0.3
        s.queue.heartbeat_seconds = 0.3
        s.queue.kill_grace_seconds = 2
        for k, v in queue.items():
            setattr(s.queue, k, v)
        return s

    return make


@pytest.fixture
async def service(db, settings_for, db_url):
    """The service on the test database, with the queue tests' settings (no scheduler)."""
    from service import Service

    return Service(db, settings_for(db_url))


@pytest.fixture
async def make(db, db_url, settings_for):
    """Build a service and a scheduler on the test database; stops every scheduler at the end."""
    made = []

    from jobs.executor import LocalExecutor
    from jobs.scheduler import Scheduler
    from service import Service

    def build(target=None, executor=None, **queue):
        """``target``: the local worker's entry point (a slowed or broken one); ``executor``: another
        executor's class, built with these settings (``RayExecutor``)."""
        settings = settings_for(db_url, **queue)
        sched = Scheduler(db, settings, executor=executor(settings) if executor else LocalExecutor(target), slots=1)
        made.append(sched)
        return Service(db, settings), sched

    yield build
    for sched in made:
        await sched.stop(requeue=False)  # ends its workers (and a Ray runtime it started)
