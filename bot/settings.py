"""Settings from config.toml, validated at start: an unknown or ill-typed key is an error naming it.

Secrets (the Discord token) come from the environment, never from this file.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from trainer.spec import METHODS, STRATEGIES, DataLimits, TrainSpec

# TrainSpec fields that describe one run, not a class-wide default.
_PER_RUN = {"data_path", "out_dir", "text_column", "label_column", "validation_path", "layer_list", "limits",
            "teacher"}
_CHOICES = {"strategy": STRATEGIES, "method": METHODS, "device": ("auto", "cpu", "cuda")}


class ConfigError(Exception):
    """config.toml cannot be used; the message names the file and the key."""


@dataclass
class Paths:
    runs_dir: str = "runs"  # where `tinytutor train` writes when --out is not given


@dataclass
class Hub:
    allow_downloads: bool = False  # True lets a hub id as --base download (needs network)


@dataclass
class Storage:
    data_dir: str = "tinytutor-data"  # datasets, models, plots, logs and the SQLite file
    database_url: str = ""  # empty: SQLite in data_dir; or postgresql+asyncpg://user@host/db


@dataclass
class Queue:
    cpu_slots: int = 1  # jobs at once on a machine without a GPU (one per GPU otherwise)
    gpu_slots_per_device: int = 1
    dispatch_seconds: float = 1.0  # how often the dispatcher looks for work
    reap_seconds: float = 5.0  # how often dead or silent workers are looked for
    heartbeat_seconds: float = 2.0  # how often a worker writes its heartbeat and progress
    heartbeat_timeout_seconds: float = 60.0  # a running job silent this long has lost its worker
    max_attempts: int = 2  # a job whose worker dies is retried until this many attempts
    time_limit_minutes: float = 60.0  # a job running longer is stopped and failed
    kill_grace_seconds: float = 5.0  # after terminate(), wait this long before kill()
    instructor_priority: int = 10  # priority of jobs instructors submit (students: 0)
    predict_cache_size: int = 4  # loaded models kept for /predict
    predict_threads: int = 1  # ONNX Runtime threads per prediction (beside training workers: 1)
    worker_nice: int = 10  # training workers run at this lower CPU priority (0-19) so predictions stay fast
    predict_batch_ms: float = 5.0  # predictions arriving within this window share one forward pass


@dataclass
class Quotas:
    """Defaults for a new class; instructors change their class's values (/quota)."""

    max_queued_per_student: int = 3  # queued and running jobs at once
    max_running_per_student: int = 1
    max_jobs_per_day: int = 10
    max_rows: int = 20000
    max_bytes: int = 5000000
    max_epochs: int = 20


@dataclass
class DiscordSettings:
    guild_id: str = ""  # a server id: commands are synced there at start (instant); empty: globally
    instructor_role_id: str = ""  # members with this role are instructors (besides Manage Server)
    max_upload_bytes: int = 5000000  # attachments larger than this are refused before download
    progress_edit_seconds: float = 5.0  # how often progress messages are edited (at most)
    outbox_seconds: float = 2.0  # how often finished jobs are looked for and announced
    give_up_minutes: float = 30.0  # a result its channel refuses (403/404) this long goes to the student's DMs


@dataclass
class Settings:
    data: DataLimits = field(default_factory=DataLimits)
    training: dict = field(default_factory=dict)  # TrainSpec defaults, validated
    base_models: dict[str, str] = field(default_factory=dict)
    paths: Paths = field(default_factory=Paths)
    hub: Hub = field(default_factory=Hub)
    storage: Storage = field(default_factory=Storage)
    queue: Queue = field(default_factory=Queue)
    quotas: Quotas = field(default_factory=Quotas)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    source: str = "built-in defaults"

    @property
    def database_url(self) -> str:
        """$TINYTUTOR_DATABASE_URL, else [storage].database_url, else SQLite in the data directory."""
        url = os.environ.get("TINYTUTOR_DATABASE_URL") or self.storage.database_url
        if url:
            return url
        return f"sqlite+aiosqlite:///{(Path(self.storage.data_dir) / 'tinytutor.db').resolve()}"

    def train_spec(self, data_path: str, **overrides) -> TrainSpec:
        """A spec from the configured defaults, with the caller's (non-None) choices on top."""
        values = dict(self.training)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainSpec(data_path=data_path, limits=self.data, **values)


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_value(where: str, key: str, value, tp):
    """Return the value converted to ``tp`` or raise ConfigError naming ``where.key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where}.{key} must be {_type_name(tp)}, got {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{where}.{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if tp in (int, float) and value < 0:
        raise ConfigError(f"{where}.{key} must not be negative, got {value!r}")
    return value


def _section(where: str, table, cls, exclude=frozenset()) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, like [{where.split(']')[0].strip('[')}]")
    hints = typing.get_type_hints(cls)
    allowed = {f.name for f in fields(cls)} - set(exclude)
    out = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key} is not a setting; the settings there are: {', '.join(sorted(allowed))}")
        out[key] = _check_value(where, key, value, hints[key])
    return out


def load_settings(path: str | Path | None = None) -> Settings:
    """Read config.toml: the given path, else $TINYTUTOR_CONFIG, else ./config.toml, else defaults."""
    explicit = path or os.environ.get("TINYTUTOR_CONFIG")
    path = Path(explicit) if explicit else Path("config.toml")
    if not path.is_file():
        if explicit:
            raise ConfigError(f"Config file {path} does not exist")
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    name = path.name
    known = {"data", "training", "base_models", "paths", "hub", "storage", "queue", "quotas", "discord"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{name}: [{key}] is not a section; the sections are {', '.join(sorted(known))}")
    data = DataLimits(**_section(f"{name}: [data]", raw.get("data", {}), DataLimits))
    training = _section(f"{name}: [training]", raw.get("training", {}), TrainSpec, _PER_RUN)
    base_models = {}
    for key, value in raw.get("base_models", {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"{name}: [base_models].{key} must be a directory path string, got {value!r}")
        p = Path(value).expanduser()
        base_models[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    paths = Paths(**_section(f"{name}: [paths]", raw.get("paths", {}), Paths))
    hub = Hub(**_section(f"{name}: [hub]", raw.get("hub", {}), Hub))
    storage = Storage(**_section(f"{name}: [storage]", raw.get("storage", {}), Storage))
    data_dir = Path(storage.data_dir).expanduser()
    storage.data_dir = str(data_dir if data_dir.is_absolute() else (path.parent / data_dir).resolve())
    queue = Queue(**_section(f"{name}: [queue]", raw.get("queue", {}), Queue))
    if queue.max_attempts < 1:
        raise ConfigError(f"{name}: [queue].max_attempts must be at least 1, got {queue.max_attempts}")
    if not 0 <= queue.worker_nice <= 19:
        raise ConfigError(f"{name}: [queue].worker_nice must be 0 to 19 (a Unix nice value), got {queue.worker_nice}")
    if queue.predict_threads < 1:
        raise ConfigError(f"{name}: [queue].predict_threads must be at least 1, got {queue.predict_threads}")
    quotas = Quotas(**_section(f"{name}: [quotas]", raw.get("quotas", {}), Quotas))
    for key in ("max_rows", "max_bytes"):  # a class quota cannot go past the server's hard cap
        if key not in raw.get("quotas", {}):
            setattr(quotas, key, min(getattr(quotas, key), getattr(data, key)))  # default: follow a lower cap
        elif getattr(quotas, key) > getattr(data, key):
            raise ConfigError(f"{name}: [quotas].{key} ({getattr(quotas, key):,}) is above [data].{key} "
                              f"({getattr(data, key):,}); lower it or raise [data].{key}")
    disc = DiscordSettings(**_section(f"{name}: [discord]", raw.get("discord", {}), DiscordSettings))
    for key in ("guild_id", "instructor_role_id"):
        if getattr(disc, key) and not getattr(disc, key).isdigit():
            raise ConfigError(f"{name}: [discord].{key} must be a Discord id (digits only), got {getattr(disc, key)!r}")
    settings = Settings(data=data, training=training, base_models=base_models, paths=paths, hub=hub,
                        storage=storage, queue=queue, quotas=quotas, discord=disc, source=str(path))
    try:
        settings.train_spec("config-check").validate()
    except ValueError as exc:
        raise ConfigError(f"{name}: [training]: {exc}") from None
    return settings
