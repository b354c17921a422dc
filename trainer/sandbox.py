"""The door: every parse of a student's bytes runs here, in a short-lived child process.

A file is untrusted: a 64 KB CSV can hold a regular expression for minutes, a 1 MB spreadsheet can
expand to gigabytes. So the bot, the scheduler and the command line never parse one themselves: they
call ``service.sandbox.run`` (asyncio) or :func:`run_sync` with a function of this package and JSON arguments,
and that function runs in a fresh ``python -m trainer.sandbox`` that

- limits itself before it reads anything: CPU seconds (``RLIMIT_CPU``) and address space
  (``RLIMIT_AS``), and is killed by the caller after a wall-clock timeout;
- starts with an environment of its own (no Discord token, web secret or database URL: nothing a
  parser bug could leak), one thread for each numeric library, and no network;
- answers with JSON only (never pickle: the parent must not run what a child says), the function's
  result, or the ``DataError`` / ``TrainerError`` it raised, which is raised again in the caller.

A file that hits a limit is refused as a ``DataError`` that names the limit ("This file took more
than 20 s of processor time to read"), so every caller's row-level error path shows it and nothing is stored. Callers
bound how many children run at once (the service: ``[sandbox].at_once``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass

from .errors import DataError, Problem, TrainerError

log = logging.getLogger("tinytutor.sandbox")
UNREADABLE = ("The file could not be read (the reader stopped unexpectedly); nothing was stored. Try saving it "
              "again as CSV UTF-8.")
ALLOWED = ("trainer.",)  # the child runs functions of these packages only
# what a child's environment keeps of the parent's: where Python and its packages are, the locale
KEPT_ENV = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "HOME",
            "HF_HOME", "TRANSFORMERS_CACHE")
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
             "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "RAYON_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Limits:
    """How much one parse may take ([sandbox] in config.toml)."""

    seconds: float = 30.0  # wall clock, start to answer (the interpreter's start included)
    cpu_seconds: int = 20
    memory_mb: int = 1024  # address space of the child

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "memory_mb": self.memory_mb}

    @classmethod
    def of(cls, section) -> Limits:
        """The limits ``[sandbox]`` (``core.settings.Sandbox``) sets."""
        return cls(seconds=section.seconds, cpu_seconds=section.cpu_seconds, memory_mb=section.memory_mb)


DEFAULT_LIMITS = Limits()


def too_slow(limits: Limits, what: str = "") -> DataError:
    return DataError([Problem("too_slow", f"This file took more than {what or f'{limits.seconds:g} s'} to read",
                              "Nothing was stored. Upload a plain CSV UTF-8 file, or a smaller one; if it is a "
                              "normal file, ask your instructor to look at it.")])


def too_big(limits: Limits) -> DataError:
    return DataError([Problem("too_much_memory", f"Reading this file needs more than {limits.memory_mb:,} MB of "
                                                 "memory", "Nothing was stored. Upload fewer rows, as CSV UTF-8 if "
                                                 "you can (spreadsheets take far more memory to read than their "
                                                 "size suggests).")])


def request(func, args: list, limits: Limits) -> tuple[list[str], bytes, dict]:
    name = f"{func.__module__}:{func.__qualname__}"
    if not func.__module__.startswith(ALLOWED):
        raise ValueError(f"{name} is not a function the sandbox runs")
    argv = [sys.executable, "-m", "trainer.sandbox", str(limits.cpu_seconds), str(limits.memory_mb)]
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ} | CHILD_ENV
    return argv, json.dumps({"call": name, "args": args}).encode(), env


def answer(returncode: int, out: bytes, err: bytes, limits: Limits):
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # the CPU limit (soft, then hard)
        raise too_slow(limits, f"{limits.cpu_seconds} s of processor time")
    try:
        reply = json.loads(out.decode() or "null")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        if b"MemoryError" in err or returncode == -signal.SIGSEGV:
            raise too_big(limits)
        log.error("the sandboxed reader exited with %s and no answer: %s", returncode, err.decode(errors="replace")[-2000:])
        raise TrainerError(UNREADABLE)
    if "result" in reply:
        return reply["result"]
    error = reply.get("error") or {}
    if error.get("kind") == "data":
        raise DataError([Problem(**p) for p in error["problems"]])
    if error.get("kind") == "memory":
        raise too_big(limits)
    if error.get("kind") == "trainer":
        raise TrainerError(error["message"])
    log.error("the sandboxed reader failed: %s", error.get("traceback", error))  # a bug: the operator sees it
    raise TrainerError(UNREADABLE)


def run_sync(func, *args, limits: Limits = DEFAULT_LIMITS):
    """``func(*args)`` in a child process within ``limits``; its result, or its error raised here. (The
    event loop's version is ``service.sandbox.run``: this package does not use asyncio.)"""
    argv, payload, env = request(func, list(args), limits)
    try:
        done = subprocess.run(argv, input=payload, capture_output=True, env=env, timeout=limits.seconds,
                              start_new_session=True, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise too_slow(limits) from None
    return answer(done.returncode, done.stdout, done.stderr, limits)


def limit_self(cpu_seconds: int, memory_mb: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 2))
    size = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _main(argv: list[str]) -> int:
    limit_self(int(argv[0]), int(argv[1]))
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever a library prints must not reach the answer
    try:
        request = json.loads(sys.stdin.buffer.read())
        module, _, name = request["call"].partition(":")
        if not module.startswith(ALLOWED):
            raise TrainerError(f"{module} is not a module the sandbox runs")
        reply = {"result": getattr(importlib.import_module(module), name)(*request["args"])}
    except DataError as exc:
        reply = {"error": {"kind": "data", "problems": [p.to_dict() for p in exc.problems]}}
    except MemoryError:
        reply = {"error": {"kind": "memory"}}
    except TrainerError as exc:
        reply = {"error": {"kind": "trainer", "message": str(exc)}}
    except Exception:  # a bug in a reader: its traceback goes to the parent's log, not to the student
        reply = {"error": {"kind": "internal", "traceback": traceback.format_exc()[-4000:]}}
    try:
        text = json.dumps(reply, ensure_ascii=False)
    except MemoryError:
        text = json.dumps({"error": {"kind": "memory"}})
    out.write(text)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
