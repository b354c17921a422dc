"""The trainer's exceptions. One hierarchy, so callers can catch ``TrainerError`` and show its text."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,204 rows``."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


class TinyTutorError(Exception):
    """The project's one error root: something a student, instructor or operator can fix; the message
    says what and how. The command line and the bot catch it (and its subclasses) by type; anything
    else is a bug, logged with its traceback."""


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


@dataclass(frozen=True)
class Problem:
    """One finding about an uploaded file: where it is and what to do about it."""

    code: str
    message: str
    hint: str = ""
    column: str | None = None
    rows: list[int] = field(default_factory=list)  # 1-based, as a spreadsheet shows them
    count: int = 0  # how many rows in all (``rows`` lists at most a few)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = ""
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" and {self.count - len(self.rows)} more" if self.count > len(self.rows) else ""
            where = f" (row {shown}{more})" if len(self.rows) == 1 and not more else f" (rows {shown}{more})"
        col = f" [column '{self.column}']" if self.column else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{self.message}{col}{where}.{hint}"


class DataError(TrainerError):
    """The file cannot be trained on. ``problems`` lists every row-level error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class BaseModelError(TrainerError):
    """The base model cannot be found or loaded safely."""


class PruningError(TrainerError):
    """The requested layers cannot be kept from this model."""
