"""What every command group of the terminal app shares: exit codes, how messages name settings, running
a coroutine, and the operator's caller."""

from __future__ import annotations

import re
import sys

EXIT_OK, EXIT_FAIL, EXIT_DATA = 0, 1, 2


SETTING_FLAGS = re.compile(r"\b(text_column|label_column|max_length|batch_size)\b")


def as_flags(text: str) -> str:
    """Messages name settings as Discord's options do (``max_length``); here they are flags (``--max-length``)."""
    return SETTING_FLAGS.sub(lambda m: "--" + m.group(1).replace("_", "-"), text)


def print_problems(problems, stream=None) -> None:
    stream = stream or sys.stderr
    print(f"The file cannot be trained on ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", file=stream)
    for p in problems:
        print(f"  - {as_flags(str(p))}", file=stream)


def run(coro):
    import asyncio

    return asyncio.run(coro)


def operator(guild: str, user: str = "operator"):
    from service import Caller

    return Caller(guild, user, instructor=True, operator=True)


def service_command(settings, work) -> int:
    """Run ``await work(service)`` on the configured database (no scheduler started)."""
    from service.runtime import Runtime

    async def go() -> int:
        async with await Runtime.open(settings) as rt:
            return await work(rt.service)

    return run(go())


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
