"""The tables. Discord ids (guilds, users, channels) are kept as strings: snowflakes exceed 2**63 in
no practical case, but the command line and the demo use readable ids like ``demo``.

Timestamps are stored as naive UTC (SQLite has no time zones) and come back as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so Alembic's batch mode on SQLite can drop and recreate them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Job states; see DESIGN.md "Job lifecycle".
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
STUDENT, INSTRUCTOR = "student", "instructor"
INT_MAX = 2**31 - 1  # the largest Integer both databases store (PostgreSQL's integer); more fails the write
PRIVATE, CLASS = "private", "class"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use storage.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Classroom(Base):
    """A class: one Discord guild, its queue state and its quotas."""

    __tablename__ = "classes"

    guild_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Quotas (defaults come from [quotas] in config.toml when the class is created).
    max_queued_per_student: Mapped[int] = mapped_column(Integer)
    max_running_per_student: Mapped[int] = mapped_column(Integer)
    max_jobs_per_day: Mapped[int] = mapped_column(Integer)
    max_rows: Mapped[int] = mapped_column(Integer)
    max_bytes: Mapped[int] = mapped_column(Integer)
    max_epochs: Mapped[int] = mapped_column(Integer)
    # Rate limits per student (instructors have none) and the class's disk quota (migration 0005).
    checks_per_hour: Mapped[int] = mapped_column(Integer, server_default="30")
    predict_files_per_hour: Mapped[int] = mapped_column(Integer, server_default="10")
    predictions_per_minute: Mapped[int] = mapped_column(Integer, server_default="30")
    max_disk_mb: Mapped[int] = mapped_column(Integer, server_default="2000")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("guild_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default=STUDENT)
    role_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when Discord last told us the role
    default_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_owner", "guild_id", "owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))  # the uploaded file's name, for display only
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))  # relative to the data directory
    rows: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    labels: Mapped[dict] = mapped_column(JSON)  # label -> count
    lint: Mapped[dict] = mapped_column(JSON)  # what `tinytutor check --json` prints
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its file removed by retention (storage.retention)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_priority", "status", "priority", "created_at"),
        Index("ix_jobs_owner", "guild_id", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    validation_dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))  # the model name the student chose
    params: Mapped[dict] = mapped_column(JSON)  # TrainSpec overrides (layers, method, epochs, ...)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    progress: Mapped[dict | None] = mapped_column(JSON)  # trainer.progress.Progress.to_dict()
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease: Mapped[str | None] = mapped_column(String(36))  # set at each claim; a worker acts only while it holds it
    worker_host: Mapped[str | None] = mapped_column(String(200))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)  # readable by the student; tracebacks go to the log
    channel_id: Mapped[str | None] = mapped_column(String(32))  # where to post the result
    # A submission to an assignment: also scored on its hidden test set (see Score).
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id", ondelete="SET NULL"))
    message_id: Mapped[str | None] = mapped_column(String(32))  # the progress message to edit
    # One of an experiment's jobs (migration 0006): its outcome is announced with the experiment's, not alone.
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Experiment(Base):
    """One request that queued several jobs differing in one setting (``/experiment``, ``queue submit
    --sweep``): when the last of them ends, ``finished_at`` is set and one outbox row announces them all."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    setting: Mapped[str] = mapped_column(String(32))  # the one setting that differs: layers, method, ...
    values: Mapped[list] = mapped_column(JSON)  # its values, in the jobs' order
    channel_id: Mapped[str | None] = mapped_column(String(32))  # where to post the result
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when its last job ended


class Assignment(Base):
    """A task an instructor sets: a hidden, labelled test file every submission is scored on (never
    shown to students, never trained on), and optionally a training file students may use."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("guild_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(32))
    test_dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    train_dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    labels: Mapped[list] = mapped_column(JSON)  # the hidden test set's labels, sorted
    test_rows: Mapped[int] = mapped_column(Integer)
    # The TF-IDF baseline trained on the training file and scored on the hidden set (None without one).
    baseline: Mapped[dict | None] = mapped_column(JSON)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_submissions: Mapped[int | None] = mapped_column(Integer)  # per student, in all
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Migration 0007. The hidden set's public part: ``public_share`` of it, stratified and seeded, split once
    # at creation; ``public_rows`` are its file row numbers (None, for an assignment set before 0007: the
    # whole set is both parts). Students see public scores only until ``revealed_at``.
    public_share: Mapped[float | None] = mapped_column(Float)
    public_rows: Mapped[list | None] = mapped_column(JSON)
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # submissions per student per UTC day
    max_picks: Mapped[int] = mapped_column(Integer, default=2, server_default="2")  # final picks per student
    channel_id: Mapped[str | None] = mapped_column(String(32))  # where it was announced: the reveal goes there
    reveal_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the deadline, or when an instructor asked
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set once: the private board is out


class Score(Base):
    """A finished submission's aggregate numbers on its assignment's hidden test set: all that ever
    leaves the worker about that set. ``macro_f1``, ``accuracy``, ``per_class_f1`` and
    ``baseline_macro_f1`` are the public part's; ``private_*`` the private part's (migration 0007), which
    no student sees before the reveal."""

    __tablename__ = "scores"
    __table_args__ = (Index("ix_scores_assignment", "assignment_id", "owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    owner_id: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(100))
    macro_f1: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    per_class_f1: Mapped[dict] = mapped_column(JSON)  # label -> F1 on the hidden set
    baseline_macro_f1: Mapped[float] = mapped_column(Float)  # TF-IDF on the student's own training split
    params: Mapped[int] = mapped_column(Integer)
    layers: Mapped[int] = mapped_column(Integer)
    ms_per_message: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the job was queued
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    private_macro_f1: Mapped[float] = mapped_column(Float)
    private_accuracy: Mapped[float] = mapped_column(Float)
    private_per_class_f1: Mapped[dict] = mapped_column(JSON)
    private_baseline_macro_f1: Mapped[float] = mapped_column(Float)
    # the frozen base read by the run's linear probe, on each part (None: the run had no probe)
    probe_macro_f1: Mapped[float | None] = mapped_column(Float)
    private_probe_macro_f1: Mapped[float | None] = mapped_column(Float)
    picked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a final pick: counts on the private board


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("guild_id", "owner_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    base_model: Mapped[str] = mapped_column(String(200))
    layers_kept: Mapped[list] = mapped_column(JSON)
    layers_base: Mapped[int] = mapped_column(Integer)
    params: Mapped[int] = mapped_column(Integer)
    params_base: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)  # the summary (accuracy, macro-F1, baseline, speed)
    visibility: Mapped[str] = mapped_column(String(16), default=PRIVATE)
    path: Mapped[str] = mapped_column(String(500))  # relative to the data directory
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    metrics: Mapped[dict] = mapped_column(JSON)  # all of metrics.json
    report_text: Mapped[str] = mapped_column(Text)
    confusion_png: Mapped[str] = mapped_column(String(500))  # relative to the data directory
    curve_png: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Outbox(Base):
    """Notifications to deliver (to Discord): written in the same transaction as what they announce."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # job_succeeded | job_failed | job_cancelled | experiment_finished
    # | assignment_revealed
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A notice may be several messages: how many were sent, so a retry sends only the rest.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when its channel refused it (403/404) for too long: the student is told another way.
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebLink(Base):
    """A single-use sign-in link to the dashboard, for one instructor of one class. Only a hash of its
    secret part is kept; using it sets ``used_at`` (once)."""

    __tablename__ = "web_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSession(Base):
    """A signed-in dashboard session: the cookie holds a random token, this row its hash, so a session
    can expire and be revoked (signing out, or ``tinytutor web revoke``)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    guild_id: Mapped[str] = mapped_column(ForeignKey("classes.guild_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    csrf: Mapped[str] = mapped_column(String(64))  # the token every form of this session carries
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
