"""The layering, read from the source: ``bot -> web -> service -> jobs -> {storage, trainer}``.

Every import counts, at the top of a module or inside a function: ``trainer`` is pure ML (no
database, job runner, event loop or Discord), ``storage`` knows only itself, ``jobs`` nothing of the
service or the bot, ``web`` (the dashboard) neither Discord nor the bot, and no package imports one
that imports it back.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trainer", "storage", "jobs", "service", "web", "bot", "migrations")

FORBIDDEN = {
    "trainer": {"storage", "jobs", "service", "web", "bot", "sqlalchemy", "alembic", "asyncio", "discord", "aiosqlite",
                "asyncpg", "apscheduler", "ray"},
    "storage": {"trainer", "jobs", "service", "web", "bot", "discord"},
    "jobs": {"service", "web", "bot", "discord"},
    "service": {"web", "bot", "discord", "aiohttp", "jinja2", "aiohttp_jinja2"},
    "web": {"bot", "discord"},
}


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level names each module of ``package`` imports (relative imports resolved to the package)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add(package if node.level else (node.module or "").split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    if not (ROOT / package).is_dir():
        pytest.skip(f"no {package}/ package")
    bad = {module: sorted(names & FORBIDDEN[package]) for module, names in imports_of(package).items()
           if names & FORBIDDEN[package]}
    assert not bad, bad


def test_no_package_imports_one_that_imports_it_back():
    graph: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        if (ROOT / package).is_dir():
            for names in imports_of(package).values():
                graph[package] |= {n for n in names if n in PACKAGES and n != package}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    cycles = [p for p in PACKAGES if reaches(p, p, {p})]
    assert not cycles, {p: sorted(graph[p]) for p in cycles}
