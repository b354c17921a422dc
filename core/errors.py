"""The project's one error hierarchy, and the small text helper every layer's messages use.

``TinyTutorError`` is the root: something a student, instructor or operator can fix, the message
says what and how. Each layer subclasses it: ``TrainerError`` (the trainer: data, settings, base
models; ``trainer.errors`` holds its kinds), ``SpecError`` (a training setting), ``ConfigError``
(config.toml or the environment), ``StorageError`` (the data directory), ``service.errors`` (a
request refused). The command line and the bot catch them by type; anything else is a bug, logged
with its traceback.
"""

from __future__ import annotations

import re


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,204 rows``."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


class TinyTutorError(Exception):
    """The project's one error root: something a student, instructor or operator can fix; the message
    says what and how."""


class ConfigError(TinyTutorError):
    """config.toml (or the environment) cannot be used; the message names the file and the key."""


class StorageError(TinyTutorError, ValueError):
    """A stored path or file the data directory refuses (a path outside it)."""


class TrainerError(TinyTutorError):
    """Something a student can fix in their data or settings; the message says what and how."""

    def for_students(self) -> str:
        """The message with the server's file paths cut to their last part (``/srv/models/bert-zh`` to
        ``bert-zh``): what a student or their channel may read. The operator and the job's log get
        ``str(self)``."""
        return _SERVER_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], str(self))


# an absolute path of two or more parts, where a message names one ("points to /srv/models/bert, which")
_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)+[\w.@+-]*")


class SpecError(TrainerError):
    """A training setting that cannot work (a value out of range, an unknown key); the message names it."""
