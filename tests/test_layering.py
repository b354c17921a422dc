"""The layering, read from the source: ``{cli, bot} -> web -> service -> jobs -> {storage, trainer} -> core``.

Every import counts, at the top of a module or inside a function: ``core`` (the ground floor: errors,
the training spec, settings) imports nothing of the project, ``trainer`` is pure ML (no database, job
runner, event loop or Discord), ``storage`` knows only itself and the ground floor, ``migrations``
only storage and the ground floor, ``jobs`` nothing of the service or the bot, ``web`` (the
dashboard) neither Discord nor the bot; no package imports one that imports it back, and no module
imports one that imports it back (directly or round a longer circle).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "trainer", "storage", "jobs", "service", "web", "bot", "cli", "migrations")

FORBIDDEN = {
    "core": {"trainer", "storage", "jobs", "service", "web", "bot", "cli", "migrations", "torch", "transformers",
             "discord"},
    "migrations": {"trainer", "jobs", "service", "web", "bot", "cli"},
    "trainer": {"storage", "jobs", "service", "web", "bot", "cli", "sqlalchemy", "alembic", "asyncio", "discord", "aiosqlite",
                "asyncpg", "apscheduler", "ray"},
    "storage": {"trainer", "jobs", "service", "web", "bot", "cli", "discord"},
    "jobs": {"service", "web", "bot", "cli", "discord"},
    "service": {"web", "bot", "cli", "discord", "aiohttp", "jinja2", "aiohttp_jinja2"},
    # the dashboard and the Discord bot reach storage, the trainer and the queue only through the service
    "web": {"bot", "cli", "discord", "storage", "trainer", "jobs"},
    "bot": {"cli", "storage", "trainer", "jobs"},  # the bot and the terminal app are siblings on top; the
    # terminal app may start the bot
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


def module_imports() -> dict[str, set[str]]:
    """Each project module (``cli.main``, ``service``...) and the project modules it imports, anywhere in it."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = here.split(".")[:len(here.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                # "from . import local" imports the module cli.local (its package is already running)
                targets |= ({module} if node.module else set()) | {f"{module}.{a.name}" for a in node.names}
        found = set()
        for t in targets:
            while t and t not in modules:  # "storage.models.Job" is the module storage.models
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
        graph[name] = found
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = module_imports()
    circles = []
    for start in graph:  # a depth-first walk from each module, back to itself
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not circles, sorted(set(circles))[:10]
