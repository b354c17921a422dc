"""The ``tinytutor`` command line. Names and flags here are a contract scripts rely on (DESIGN.md).

Each command group is a module with ``add_commands(sub)``, which adds its subcommands and the function
each runs (``local``: train, check, predict, speed, example-data; ``queue``: queue, scheduler, gc, db;
``assignments``: assignment, leaderboard, compare; ``serve``: web, bot, demo). ``main`` loads the
settings, runs the command and turns the project's errors into a message and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import assignments, local, queue, serve
from .common import EXIT_DATA, EXIT_FAIL, as_flags, print_problems, safe_url

GROUPS = (local, queue, assignments, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinytutor", description="Prune, fine-tune and evaluate small BERT classifiers.")
    parser.add_argument("--config", help="config.toml to use (default: $TINYTUTOR_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.settings import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    # Students' uploads, hidden test sets, models, logs and the SQLite file are the service account's
    # alone: everything this process and its workers create is private (0600 files, 0700 directories).
    os.umask(0o077)
    if getattr(args, "executor", None):
        settings = settings.changed(queue={"executor": args.executor})
    if not settings.hub.allow_downloads:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers reads these when (and only if) a command imports it: quiet, no progress bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sqlalchemy.exc import SQLAlchemyError

    from core.errors import TinyTutorError
    from service.errors import InvalidDataset, ServiceError
    from trainer.errors import DataError

    try:
        return args.run(args, settings)
    except DataError as exc:
        print_problems(exc.problems)
        return EXIT_DATA
    except ServiceError as exc:
        print(f"error: {as_flags(str(exc))}", file=sys.stderr)
        refused_upload = isinstance(exc, InvalidDataset) or getattr(exc, "limit", None) in ("max_bytes", "max_rows")
        return EXIT_DATA if refused_upload else EXIT_FAIL
    except SQLAlchemyError as exc:  # a database that cannot be opened or reached
        print(f"error: the database at {safe_url(settings.database_url)} cannot be used: "
              f"{getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return EXIT_FAIL
    except TinyTutorError as exc:  # the project's error root: a message a person can act on
        print(f"error: {as_flags(str(exc))}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:  # a damaged model directory, a full disk, a file that vanished
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
