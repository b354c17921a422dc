"""Settings from config.toml and the environment, as pydantic models checked at start.

Every section refuses unknown keys, wrong types (strictly: ``true`` is not a number), values out of
range and non-finite numbers, with a one-line message naming the key: ``config.toml: [queue].cpu_slots:
Input should be greater than or equal to 1 (got 0)``. Environment variables override the file
(``TINYTUTOR_QUEUE__CPU_SLOTS=2``, through pydantic-settings); ``TINYTUTOR_DATABASE_URL`` is read in
``Settings.database_url`` and nowhere else. Secrets (the Discord token) come from the environment, never from here.

Settings are frozen once loaded: what a command-line flag, the demo or a test sets differently is a new
``Settings`` made by :meth:`Settings.changed`, checked as the file's values are.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from .errors import ConfigError
from .spec import DataLimits, TrainSpec, one_line

# TrainSpec fields that describe one run, not a class-wide default.
_PER_RUN = {"data_path", "out_dir", "text_column", "label_column", "validation_path", "layer_list", "limits",
            "teacher"}
# PostgreSQL's integer: a quota above it would make every submission fail (storage.models.INT_MAX; not
# imported from there, so that reading the settings never loads SQLAlchemy)
PG_INT_MAX = 2**31 - 1
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# [training]: the class-wide defaults of a run, TrainSpec's own fields (types, defaults and ranges in one
# place, core.spec), less those chosen per run.
Training = create_model("Training", __base__=Section, __doc__="[training]: TrainSpec's defaults for this class.",
                        **{name: (info.annotation, info) for name, info in TrainSpec.__pydantic_fields__.items()
                           if name not in _PER_RUN})


class BaseModelTable(Section):
    """A base under [base_models] given as a table: its directory and how its encoder is read."""

    path: str
    pooling: Literal["mean", "cls"] | None = None  # None: what the directory declares (1_Pooling/config.json)


class Paths(Section):
    runs_dir: str = "runs"  # where `tinytutor train` writes when --out is not given


class Hub(Section):
    allow_downloads: bool = False  # True lets a hub id as --base download (needs network)


class Storage(Section):
    data_dir: str = "tinytutor-data"  # datasets, models, plots, logs and the SQLite file
    database_url: str = ""  # empty: SQLite in data_dir; or postgresql+asyncpg://user@host/db
    # retention (storage.retention, `tinytutor gc`): 0 keeps forever. A model's dataset and assignment files
    # are kept as long as they are used, whatever their age.
    keep_uploads_days: float = Field(30.0, ge=0, le=36500)  # uploads no queued job, model or assignment uses
    keep_failed_days: float = Field(7.0, ge=0, le=36500)  # a failed or cancelled job's log, plots, partial model
    gc_hours: float = Field(24.0, gt=0, le=24 * 365)  # how often the scheduler's process cleans up

    @field_validator("database_url")
    @classmethod
    def _supported(cls, url: str) -> str:
        return check_database_url(url) if url else url


def check_database_url(url: str) -> str:
    """The URL if TinyTutor can use it; ValueError naming the supported drivers otherwise."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise ValueError(f"{url!r} is not a database URL; use {' or '.join(d + '://...' for d in DATABASE_DRIVERS)}"
                         ) from None
    if u.drivername not in DATABASE_DRIVERS:
        raise ValueError(f"the driver {u.drivername!r} is not supported; use sqlite+aiosqlite:///PATH or "
                         "postgresql+asyncpg://USER@HOST:5432/DB")
    return url


class Queue(Section):
    executor: Literal["local", "ray"] = "local"  # where jobs run: processes here, or Ray tasks ([ray])
    cpu_slots: int = Field(1, ge=1, le=1024)  # jobs at once on a machine without a GPU (one per GPU otherwise)
    gpu_slots_per_device: int = Field(1, ge=1, le=64)
    dispatch_seconds: float = Field(1.0, gt=0, le=3600)  # how often the dispatcher looks for work
    reap_seconds: float = Field(5.0, gt=0, le=3600)  # how often dead or silent workers are looked for
    reveal_seconds: float = Field(30.0, gt=0, le=3600)  # how often assignments past their deadline are revealed
    heartbeat_seconds: float = Field(2.0, gt=0, le=3600)  # how often a worker writes its heartbeat and progress
    heartbeat_timeout_seconds: float = Field(60.0, gt=0)  # a running job silent this long has lost its worker
    max_attempts: int = Field(2, ge=1, le=100)  # a job whose worker dies is retried until this many attempts
    time_limit_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)  # a job running longer is stopped and failed
    kill_grace_seconds: float = Field(5.0, ge=0, le=600)  # after terminate(), wait this long before kill()
    instructor_priority: int = Field(10, ge=-1000, le=1000)  # priority of instructors' jobs (students: 0)
    predict_cache_size: int = Field(4, ge=1, le=256)  # loaded models kept for /predict
    predict_threads: int = Field(1, ge=1, le=256)  # ONNX Runtime threads per prediction (beside training: 1)
    worker_nice: int = Field(10, ge=0, le=19)  # training workers' CPU priority (Unix nice) so predictions stay fast
    predict_batch_ms: float = Field(5.0, ge=0, le=1000)  # predictions within this window share a forward pass

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeats(self):
        if self.heartbeat_timeout_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(f"heartbeat_timeout_seconds ({self.heartbeat_timeout_seconds:g}) must be at least 3 "
                             f"heartbeats ({3 * self.heartbeat_seconds:g} s), or healthy workers are declared dead")
        return self


class Ray(Section):
    address: str = ""  # empty: start a local Ray runtime; else join that cluster ("ray://head:10001" or "auto")
    cpus_per_job: float = Field(1.0, gt=0, le=1024)  # CPUs a job asks for on a cluster without GPUs
    slots: int = Field(0, ge=0, le=10_000)  # jobs at once; 0: one per GPU in the cluster, else CPUs / cpus_per_job
    local_cpus: int = Field(0, ge=0, le=1024)  # CPUs of a local runtime; 0: all of this machine's


class Sandbox(Section):
    """How much reading one uploaded file may take (trainer.sandbox): each is read in a child process."""

    seconds: float = Field(30.0, gt=0, le=3600)  # wall clock, the child's start included
    cpu_seconds: int = Field(20, ge=1, le=3600)  # a 20 MB CSV of short rows takes about 8
    memory_mb: int = Field(1024, ge=128, le=1_048_576)  # the child's address space
    at_once: int = Field(2, ge=1, le=256)  # files read at the same time (more wait their turn)


class Quotas(Section):
    """Defaults for a new class; instructors change their class's values (/quota)."""

    max_queued_per_student: int = Field(5, ge=1, le=PG_INT_MAX)  # queued and running jobs at once
    max_running_per_student: int = Field(1, ge=1, le=PG_INT_MAX)
    max_jobs_per_day: int = Field(10, ge=1, le=PG_INT_MAX)
    max_rows: int = Field(20000, ge=1, le=PG_INT_MAX)
    max_bytes: int = Field(5000000, ge=1, le=PG_INT_MAX)
    max_epochs: int = Field(20, ge=1, le=PG_INT_MAX)
    checks_per_hour: int = Field(30, ge=1, le=PG_INT_MAX)  # /check per student (instructors: no limit)
    predict_files_per_hour: int = Field(10, ge=1, le=PG_INT_MAX)  # /predict_file per student
    predictions_per_minute: int = Field(30, ge=1, le=PG_INT_MAX)  # /predict and Classify message per student
    max_disk_mb: int = Field(2000, ge=1, le=PG_INT_MAX)  # the class's uploads and models together


class DiscordSettings(Section):
    guild_id: str = Field("", pattern=r"^\d*$")  # a server id: commands sync there at start; empty: globally
    # more servers the bot serves beside guild_id (commands sync to each); both empty: any server that invites it
    allowed_guilds: list[Annotated[str, Field(pattern=r"^\d+$")]] = Field(default_factory=list)
    leave_other_guilds: bool = False  # leave a server that is not allowed when invited to it or used from it
    members_intent: bool = False  # the privileged Server Members intent (switch it on in the developer portal too)
    instructor_role_id: str = Field("", pattern=r"^\d*$")  # members with this role are instructors too
    max_upload_bytes: int = Field(5000000, ge=1, le=PG_INT_MAX)  # larger attachments are refused before download
    progress_edit_seconds: float = Field(5.0, gt=0, le=3600)  # how often progress messages are edited (at most)
    outbox_seconds: float = Field(2.0, gt=0, le=3600)  # how often finished jobs are looked for and announced
    give_up_minutes: float = Field(30.0, ge=0)  # a result its channel refuses (403/404) this long goes to DMs

    @property
    def servers(self) -> list[str]:
        """The servers the bot serves; empty: any server that invites it."""
        return list(dict.fromkeys(([self.guild_id] if self.guild_id else []) + list(self.allowed_guilds)))

    def serves(self, guild_id: int | str | None) -> bool:
        servers = self.servers
        return guild_id is not None and (not servers or str(guild_id) in servers)


class Web(Section):
    """The instructor dashboard (``web/``): served by the bot when enabled, or alone by ``tinytutor web``."""

    enabled: bool = False  # serve it from the bot's process
    host: str = "127.0.0.1"  # keep it on localhost behind a reverse proxy with TLS (README)
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = ""  # what sign-in links start with (https://tutor.example.edu); empty: http://host:port
    secret_env: str = Field("TINYTUTOR_WEB_SECRET", pattern=r"^[A-Z_][A-Z0-9_]*$")  # the variable holding the secret
    link_minutes: float = Field(10.0, gt=0, le=1440)  # how long a sign-in link works (once)
    session_hours: float = Field(12.0, gt=0, le=24 * 30)  # how long a signed-in session lasts
    role_check_minutes: float = Field(5.0, gt=0, le=24 * 60)  # a role recorded longer ago is asked of Discord again
    allow_insecure_http: bool = False  # allow a public_url of http:// that is not this machine (cookies in clear)
    page_size: int = Field(25, ge=5, le=500)  # rows per page
    refresh_seconds: float = Field(2.0, ge=0.5, le=600)  # how often the queue page refreshes itself

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def check_transport(self) -> str | None:
        """Before the dashboard starts: ConfigError when instructors would reach it over plain HTTP from
        another machine (the session cookie and sign-in links in clear); with ``allow_insecure_http``, the
        warning to log instead. None when the address is https:// or this machine's own."""
        from urllib.parse import urlsplit

        url = urlsplit(self.base_url)
        if url.scheme == "https" or _loopback(url.hostname or ""):
            return None
        problem = (f"[web] the dashboard's address {self.base_url} is plain http:// and not this machine: sign-in "
                   "links and session cookies would cross the network unencrypted")
        if self.allow_insecure_http:
            return problem + " (allowed by [web].allow_insecure_http)"
        raise ConfigError(f"config.toml: {problem}. Put it behind a reverse proxy with TLS and set public_url = "
                          "\"https://...\" (README: the instructor dashboard), or set allow_insecure_http = true.")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """All of config.toml. The file's values are given as keyword arguments; environment variables
    (``TINYTUTOR_<SECTION>__<KEY>``) override them."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True,  # each section is strict and frozen too
                                      env_prefix="TINYTUTOR_", env_nested_delimiter="__")

    data: DataLimits = Field(default_factory=DataLimits)
    training: Training = Field(default_factory=Training)
    # name -> a local model directory, or a table {path = "...", pooling = "mean" | "cls"}; load_settings
    # turns tables into plain dicts (they travel to workers as JSON)
    base_models: dict[str, str | dict] = Field(default_factory=dict)
    paths: Paths = Field(default_factory=Paths)
    hub: Hub = Field(default_factory=Hub)
    storage: Storage = Field(default_factory=Storage)
    queue: Queue = Field(default_factory=Queue)
    ray: Ray = Field(default_factory=Ray)
    quotas: Quotas = Field(default_factory=Quotas)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    web: Web = Field(default_factory=Web)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        def environment() -> dict:  # values as TOML would give them: 3 is a number, true a boolean
            return _typed(env_settings())

        return environment, init_settings  # the environment beats the file

    @field_validator("base_models", mode="before")
    @classmethod
    def _base_model_entries(cls, values):
        for key, value in (values or {}).items():
            if isinstance(value, dict):
                try:
                    BaseModelTable(**value)
                except ValidationError as exc:
                    raise ValueError(f"{key}.{one_line(exc)}") from None
            elif not isinstance(value, str):
                raise ValueError(f"{key} must be a model directory (a string) or a table like "
                                 f"{{ path = \"...\", pooling = \"mean\" }}, not {value!r}")
        return values

    @field_validator("training", mode="before")
    @classmethod
    def _per_run_keys(cls, values):
        per_run = sorted(set(values) & _PER_RUN) if isinstance(values, dict) else []
        if per_run:
            raise ValueError(f"{per_run[0]} is not a setting here: it is chosen per run")
        return values

    @model_validator(mode="before")
    @classmethod
    def _quota_defaults_follow_caps(cls, values: dict) -> dict:
        """A class quota left at its default follows a server cap set below it ([data].max_rows = 10)."""
        data, quotas = values.get("data") or {}, values.get("quotas") or {}
        if not (isinstance(data, dict) and isinstance(quotas, dict)):
            return values
        lower = {key: data[key] for key in ("max_rows", "max_bytes") if key not in quotas
                 and isinstance(data.get(key), int) and data[key] < Quotas.model_fields[key].default}
        return {**values, "quotas": {**quotas, **lower}} if lower else values

    @model_validator(mode="after")
    def _quotas_within_caps(self):
        for key in ("max_rows", "max_bytes"):  # a class quota cannot go past the server's hard cap
            if getattr(self.quotas, key) > getattr(self.data, key):
                raise ValueError(f"[quotas].{key} ({getattr(self.quotas, key):,}) is above [data].{key} "
                                 f"({getattr(self.data, key):,}); lower it or raise [data].{key}")
        return self

    @property
    def database_url(self) -> str:
        """$TINYTUTOR_DATABASE_URL, else [storage].database_url, else SQLite in the data directory."""
        url = os.environ.get("TINYTUTOR_DATABASE_URL")
        if url:
            try:
                return check_database_url(url)
            except ValueError as exc:
                raise ConfigError(f"TINYTUTOR_DATABASE_URL: {exc}") from None
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite+aiosqlite:///{(Path(self.storage.data_dir) / 'tinytutor.db').resolve()}"

    def train_spec(self, data_path: str, **overrides) -> TrainSpec:
        """A spec from the configured defaults, with the caller's (non-None) choices on top. SpecError
        names a setting that cannot work."""
        values = self.training.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainSpec.make(data_path=data_path, limits=self.data, **values)

    def changed(self, **sections: dict) -> Settings:
        """A copy with some settings changed, each checked as in config.toml (ConfigError naming the key):
        ``settings.changed(queue={"cpu_slots": 2}, training={"epochs": 1})``. The environment is not read
        again: these values win."""
        values = self.model_dump()
        for name, change in sections.items():
            if name not in values:
                raise ConfigError(f"[{name}] is not a section; the sections are {', '.join(sorted(values))}")
            values[name] = {**values[name], **change}
        return _validated(type(self).model_validate, values, "settings")


def load_settings(path: str | Path | None = None) -> Settings:
    """Read config.toml: the given path, else $TINYTUTOR_CONFIG, else ./config.toml, else defaults."""
    explicit = path or os.environ.get("TINYTUTOR_CONFIG")
    path = Path(explicit) if explicit else Path("config.toml")
    if not path.is_file() and explicit:
        raise ConfigError(f"Config file {path} does not exist")
    name = path.name if path.is_file() else "environment"
    try:
        raw = TomlConfigSettingsSource(Settings, toml_file=path).toml_data  # {} when there is no file
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sections = sorted(Settings.model_fields)
    for key, value in raw.items():
        if key not in Settings.model_fields:
            raise ConfigError(f"{name}: [{key}] is not a section; the sections are {', '.join(sections)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: [{key}] must be a table, like [{key}] on a line of its own")
    settings = _validated(lambda values: Settings(**values), raw, name)
    # paths in the file are relative to the file
    base = path.parent
    base_models = {}
    for key, value in settings.base_models.items():
        p = Path(value if isinstance(value, str) else value["path"]).expanduser()
        where = str(p if p.is_absolute() else (base / p).resolve())
        base_models[key] = where if isinstance(value, str) else {"path": where, "pooling": value.get("pooling")}
    data_dir = Path(settings.storage.data_dir).expanduser()
    data_dir = str(data_dir if data_dir.is_absolute() else (base / data_dir).resolve())
    values = settings.model_dump()
    values["base_models"], values["storage"]["data_dir"] = base_models, data_dir
    return _validated(Settings.model_validate, values, name)


def _validated(make, values: dict, name: str) -> Settings:
    try:
        return make(values)
    except ValidationError as exc:
        raise ConfigError(f"{name}: {_describe(exc)}") from None


def _typed(value):
    """An environment variable's text read as a TOML value would be ("3" -> 3, "true" -> True), else kept."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, str):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _describe(exc: ValidationError) -> str:
    """The first problem, one line, naming ``[section].key``."""
    e = exc.errors()[0]
    loc = [str(x) for x in e["loc"]]
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:
        return msg
    where = f"[{loc[0]}]" + "".join(f".{x}" for x in loc[1:])
    if e["type"] in ("extra_forbidden", "unexpected_keyword_argument") and len(loc) == 2:  # models, dataclasses
        return f"{where} is not a setting; the settings there are: {', '.join(sorted(_fields_of(loc[0])))}"
    got = "" if e["type"] in ("value_error", "missing") else f" (got {e['input']!r})"
    return f"{where}: {msg}{got}"


def _fields_of(section: str) -> set[str]:
    from dataclasses import fields, is_dataclass

    tp = Settings.model_fields[section].annotation
    if is_dataclass(tp):
        return {f.name for f in fields(tp)}
    return set(getattr(tp, "model_fields", {}))
