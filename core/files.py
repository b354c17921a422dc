"""Writing files: a directory no reader ever sees half of (a model, a report's plots), and CSV cells a
spreadsheet shows as text."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """A temporary directory beside ``final`` (``.<name>.<random>``, which a sweep of ``.<name>.*`` finds) to
    fill; when the block ends normally it becomes ``final`` in one rename, and on any error it is removed.
    An existing ``final`` is removed first: with ``replace`` whatever it holds, else only when empty."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final) if replace else final.rmdir()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value) -> str:
    """A cell a spreadsheet will show as text, never run (OWASP, CSV injection): one that starts like a
    formula (= + - @, a tab or a line break, or their full-width forms) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
