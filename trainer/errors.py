"""The trainer's kinds of error, under ``core.errors.TrainerError`` (the root and the spec's error live
on the ground floor, where the spec is): callers catch ``TrainerError`` and show its text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.errors import SpecError, TinyTutorError, TrainerError, plural

__all__ = ["BaseModelError", "DataError", "PruningError", "Problem", "SpecError", "problem", "TinyTutorError", "TrainerError",
           "plural"]


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


MAX_ROWS_SHOWN = 8  # a Problem lists at most this many rows, then counts the rest


def problem(code: str, message: str, hint: str = "", column: str | None = None, rows=()) -> Problem:
    """A Problem naming at most MAX_ROWS_SHOWN of ``rows`` and counting them all."""
    rows = list(rows)
    return Problem(code=code, message=message, hint=hint, column=column, rows=rows[:MAX_ROWS_SHOWN], count=len(rows))


class DataError(TrainerError):
    """The file cannot be trained on. ``problems`` lists every row-level error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class BaseModelError(TrainerError):
    """The base model cannot be found or loaded safely."""


class PruningError(TrainerError):
    """The requested layers cannot be kept from this model."""
