"""The ``tinytutor`` command line. Names and flags here are a contract scripts rely on (DESIGN.md)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from core.spec import METHODS, STRATEGIES

from .tables import board_lines

EXIT_OK, EXIT_FAIL, EXIT_DATA = 0, 1, 2


def _layers(value: str):
    """``--layers 3`` keeps three layers; ``--layers 0,2,4`` keeps exactly those."""
    try:
        if "," in value:
            return [int(v) for v in value.split(",") if v.strip()]
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of layers or a list like 0,2,4, not {value!r}") from None


def _add_train_flags(p: argparse.ArgumentParser, queued: bool = False) -> None:
    if queued:
        p.add_argument("file", nargs="?", help="CSV, TSV, JSONL, JSON or XLSX with a text and a label column "
                                               "(optional with --assignment or --like: their file is used)")
    else:
        p.add_argument("file", help="CSV, TSV, JSONL, JSON or XLSX with a text and a label column")
    p.add_argument("--text-column", help="the column holding the texts (found by name when not given)")
    p.add_argument("--label-column", help="the column holding the labels (found by name when not given)")
    p.add_argument("--validation", metavar="FILE", help="a separate validation file (same columns)")
    p.add_argument("--base", help="base model: minilm-l6 (embedded), a [base_models] name, or a directory")
    p.add_argument("--layers", type=_layers, help="encoder layers to keep: a count (3) or a list (0,2,4)")
    p.add_argument("--strategy", choices=STRATEGIES, help="which layers a count keeps")
    p.add_argument("--method", choices=METHODS,
                   help="what to train: full, lora, head, distill (TinyBERT distillation from a fine-tuned teacher), "
                        "or probe (the frozen encoder and a linear head: seconds)")
    p.add_argument("--epochs", type=int,
                   help="passes over the training data (default: until validation macro-F1 stops improving)")
    p.add_argument("--lr", type=float, help="learning rate (default depends on --method)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="tokens per window; longer texts are read in overlapping windows")
    p.add_argument("--seed", type=int)
    p.add_argument("--augment", type=int, metavar="K",
                   help="distill: K perturbed copies of each training text, labelled by the teacher")
    if not queued:
        p.add_argument("--teacher", metavar="DIR",
                       help="distill: a fine-tuned model directory with the same labels (default: fine-tune the base first)")
        p.add_argument("--out", help="output directory for the model and report (must be new or empty)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinytutor", description="Prune, fine-tune and evaluate small BERT classifiers.")
    parser.add_argument("--config", help="config.toml to use (default: $TINYTUTOR_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a classifier on a labelled file, in this process")
    _add_train_flags(p)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")

    p = sub.add_parser("check", help="validate and lint a labelled file without training")
    p.add_argument("file")
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--base", help="base model whose tokenizer to check coverage against")
    p.add_argument("--max-length", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("predict", help="classify texts with a trained model directory")
    p.add_argument("model_dir")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("speed", help="one-message latency and batched throughput: PyTorch fp32 vs the served path")
    p.add_argument("model_dir")
    p.add_argument("--under-load", action="store_true",
                   help="measure while a training process loads every core, as a queue worker does beside the bot")
    p.add_argument("--messages", type=int, default=200, help="single messages timed per engine")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the served path")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("queue", help="the class job queue, on the database the bot uses")
    qsub = p.add_subparsers(dest="queue_command", required=True)
    s = qsub.add_parser("submit", help="queue a training job for a student (checked first; nothing stored if bad)")
    _add_train_flags(s, queued=True)
    s.add_argument("--guild", required=True, help="the class (Discord server id)")
    s.add_argument("--user", required=True, help="the student (Discord user id)")
    s.add_argument("--name", help="the model's name (default: the file's name)")
    s.add_argument("--instructor", action="store_true", help="submit as an instructor (runs before students' jobs)")
    s.add_argument("--teacher-model", type=int, metavar="MODEL_ID",
                   help="distill from this model of the class (same labels); implies --method distill")
    s.add_argument("--assignment", metavar="NAME", help="submit to this assignment (scored on its hidden test set)")
    s.add_argument("--like", type=int, metavar="JOB_ID",
                   help="start from this job's settings (flags given here override them); without FILE, its file")
    s.add_argument("--json", action="store_true")
    s = qsub.add_parser("list", help="a class's jobs: running, then queued in start order, then finished")
    s.add_argument("--guild", required=True)
    s.add_argument("--user", help="only this student's jobs")
    s.add_argument("--json", action="store_true")
    s = qsub.add_parser("cancel", help="cancel a queued job, or stop a running one")
    s.add_argument("job_id", type=int)

    p = sub.add_parser("assignment", help="assignments: a hidden test set every submission is scored on")
    asub = p.add_subparsers(dest="assignment_command", required=True)
    s = asub.add_parser("create", help="set an assignment (the test file is checked, stored, and never shown)")
    s.add_argument("--guild", required=True, help="the class (Discord server id)")
    s.add_argument("--name", required=True)
    s.add_argument("--test", required=True, metavar="FILE", help="the hidden, labelled test file")
    s.add_argument("--train", metavar="FILE", help="a training file students may use (optional)")
    s.add_argument("--deadline", metavar="ISO", help="e.g. 2026-12-15 or 2026-12-15T18:00 (UTC unless an offset is given)")
    s.add_argument("--max-submissions", type=int, metavar="N", help="per student (cancelled and failed jobs do not count)")
    s.add_argument("--description", default="")
    s.add_argument("--user", default="operator", help="the instructor setting it (default: operator)")
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("list", help="a class's assignments")
    s.add_argument("--guild", required=True)
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("close", help="stop taking submissions (queued ones still run; the board stays)")
    s.add_argument("--guild", required=True)
    s.add_argument("--name", required=True)

    p = sub.add_parser("leaderboard", help="an assignment's board: each student's best submission on the hidden set")
    p.add_argument("--guild", required=True)
    p.add_argument("--assignment", required=True, metavar="NAME")
    p.add_argument("--all", action="store_true", help="every submission, not only each student's best")
    p.add_argument("--csv", metavar="FILE", help="also write every submission as CSV to FILE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compare", help="two finished jobs side by side: settings that differ, scores, per-class F1")
    p.add_argument("job_a", type=int)
    p.add_argument("job_b", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("web", help="the instructor dashboard, alone (the bot serves it too when [web].enabled)")
    p.add_argument("--host", help="address to listen on (default [web].host)")
    p.add_argument("--port", type=int, help="port (default [web].port)")
    wsub = p.add_subparsers(dest="web_command")
    s = wsub.add_parser("link", help="print a single-use sign-in link for an instructor of a class")
    s.add_argument("--guild", required=True)
    s.add_argument("--user", required=True, help="the instructor (their Discord user id)")
    s.add_argument("--instructor", action="store_true",
                   help="record the user as an instructor of the class first (you vouch for it)")
    s = wsub.add_parser("revoke", help="sign out every dashboard session of a class (or of one user)")
    s.add_argument("--guild", required=True)
    s.add_argument("--user")

    sub.add_parser("bot", help="run the Discord bot, with the scheduler and workers (token from DISCORD_TOKEN)")

    p = sub.add_parser("scheduler", help="run the scheduler and its workers (no Discord) until Ctrl-C")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where jobs run: local processes, or Ray tasks ([ray] in config.toml); default [queue].executor")
    p.add_argument("--until-idle", action="store_true",
                   help="exit once no job is running or queued (a paused class's jobs wait): for scripts")

    p = sub.add_parser("gc", help="remove what [storage] retention lets go: old unused uploads, failed jobs' files")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and remove nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("db", help="the database schema")
    dsub = p.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="migrate the database to the newest schema (the app also does this at start)")

    p = sub.add_parser("demo", help="the whole flow offline: a demo class, students, queued jobs, reports, predictions")
    p.add_argument("--executor", choices=("local", "ray"), help="run the demo's jobs as local processes or Ray tasks")
    p.add_argument("--dir", help="where to put the demo's fresh database and files (default: runs/demo-<time>)")
    p.add_argument("--epochs", type=int, help="epochs per demo job (default: the [training] setting)")

    p = sub.add_parser("example-data", help="write an example dataset (chat lines by topic, from chatterbot-corpus)")
    p.add_argument("out", help="CSV file to write")
    p.add_argument("--topics", help="comma-separated chatterbot-corpus topics (default: ai,coding,emotion,psychology,literature)")
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
        return {"train": cmd_train, "check": cmd_check, "predict": cmd_predict, "speed": cmd_speed,
                "example-data": cmd_example_data, "queue": cmd_queue, "scheduler": cmd_scheduler,
                "assignment": cmd_assignment, "leaderboard": cmd_leaderboard, "compare": cmd_compare,
                "web": cmd_web,
                "db": cmd_db, "gc": cmd_gc, "demo": cmd_demo, "bot": cmd_bot}[args.command](args, settings)
    except DataError as exc:
        _print_problems(exc.problems)
        return EXIT_DATA
    except ServiceError as exc:
        print(f"error: {as_flags(str(exc))}", file=sys.stderr)
        refused_upload = isinstance(exc, InvalidDataset) or getattr(exc, "limit", None) in ("max_bytes", "max_rows")
        return EXIT_DATA if refused_upload else EXIT_FAIL
    except SQLAlchemyError as exc:  # a database that cannot be opened or reached
        print(f"error: the database at {_safe_url(settings.database_url)} cannot be used: "
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


SETTING_FLAGS = re.compile(r"\b(text_column|label_column|max_length|batch_size)\b")


def as_flags(text: str) -> str:
    """Messages name settings as Discord's options do (``max_length``); here they are flags (``--max-length``)."""
    return SETTING_FLAGS.sub(lambda m: "--" + m.group(1).replace("_", "-"), text)


def _print_problems(problems, stream=None) -> None:
    stream = stream or sys.stderr
    print(f"The file cannot be trained on ({len(problems)} problem{'s' if len(problems) != 1 else ''}):", file=stream)
    for p in problems:
        print(f"  - {as_flags(str(p))}", file=stream)


def cmd_train(args, settings) -> int:
    from trainer.pipeline import default_out_dir, run_training
    from trainer.progress import TerminalBar, Throttle

    layers = args.layers if isinstance(args.layers, int) else None
    layer_list = args.layers if isinstance(args.layers, list) else None
    out = args.out or str(default_out_dir(args.file, settings.paths.runs_dir))
    spec = settings.train_spec(
        args.file, out_dir=out, text_column=args.text_column, label_column=args.label_column,
        validation_path=args.validation, base=args.base, layers=layers, layer_list=layer_list,
        strategy=args.strategy, method=args.method, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.seed, teacher=args.teacher, augment=args.augment)
    result = run_training(spec, Throttle(TerminalBar(), seconds=0.2), settings.base_models)
    m = result.metrics
    if not args.json:
        print(m["report_text"])
        probe = f"   frozen base + probe {m['probe']['macro_f1']:.3f}" if m.get("probe") else ""
        print(f"accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
              f"TF-IDF baseline macro-F1 {m['baseline_macro_f1']:.3f}{probe}")
        print(f"layers {len(m['layers_kept'])}/{m['layers_base']} {m['layers_kept']}   params {m['params']:,} "
              f"(base {m['params_base']:,})   {m['ms_per_message']:.2f} ms/message ({m['engine']})   "
              f"trained in {m['train_seconds']:.0f} s")
        if "teacher" in m:
            t = m["teacher"]
            print(f"teacher: {t['layers']} layers, params {t['params']:,}, macro-F1 {t['macro_f1']:.3f}, "
                  f"{t['ms_per_message']:.1f} ms/message (PyTorch); the student keeps {m['retained']:.1%}")
        if m["mistakes"]:
            print("\nMost confident mistakes:")
            for x in m["mistakes"][:5]:
                print(f"  row {x['row']}: {x['label']} -> {x['predicted']} ({x['confidence']:.0%}): {x['text'][:80]}")
        print("\nAdvice:")
        for tip in m["advice"]:
            print(f"  - {tip}")
        print(f"\nmodel and report: {result.model_dir}")
        print(f"plots: {result.confusion_png}  {result.curve_png}")
    else:
        print(json.dumps(result.summary(), ensure_ascii=False))
    return EXIT_OK


def cmd_check(args, settings) -> int:
    from trainer.check import check_upload
    from trainer.errors import DataError, Problem
    from trainer.sandbox import Limits, run_sync

    spec = settings.train_spec(args.file, text_column=args.text_column, label_column=args.label_column,
                               base=args.base, max_length=args.max_length)
    try:  # read in the sandbox, as the bot reads uploads: a hostile file is stopped at [sandbox]'s limits
        info = run_sync(check_upload, spec.to_dict(), settings.base_models, limits=Limits.of(settings.sandbox))["info"]
    except DataError as exc:
        if not args.json:
            raise
        print(json.dumps({"rows": None, "labels": {}, "encoding": None, "text_column": None, "label_column": None,
                          "warnings": [], "errors": [p.to_dict() for p in exc.problems]}, ensure_ascii=False))
        return EXIT_DATA
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return EXIT_OK
    print(f"{info['rows']} examples, {len(info['labels'])} labels, {info['format']} in {info['encoding']}; "
          f"text column '{info['text_column']}', label column '{info['label_column']}'")
    for label, n in info["labels"].items():
        print(f"  {label:<24} {n}")
    if info["warnings"]:
        print("Warnings:")
        for w in info["warnings"]:
            print(f"  - {Problem(**w)}")
    print("The file can be trained on.")
    return EXIT_OK


def cmd_predict(args, settings) -> int:
    from trainer.predict import Predictor

    predictor = Predictor(args.model_dir)
    preds = predictor.predict(args.texts, top_k=args.top_k)
    if args.json:
        print(json.dumps([{"text": t, **p.to_dict()} for t, p in zip(args.texts, preds, strict=True)], ensure_ascii=False))
        return EXIT_OK
    for text, p in zip(args.texts, preds, strict=True):
        others = ", ".join(f"{lab} {s:.0%}" for lab, s in p.top[1:])
        print(f"{p.label:<16} {p.score:6.1%}  {text}" + (f"   ({others})" if others else ""))
    return EXIT_OK


def cmd_speed(args, settings) -> int:
    from trainer.speed import measure

    result = measure(args.model_dir, under_load=args.under_load, messages=args.messages, threads=args.threads,
                     load_nice=settings.queue.worker_nice)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return EXIT_OK
    load = (f"while a training process at nice {result['load_nice']} ([queue].worker_nice) loads every core"
            if args.under_load else "on an otherwise idle CPU")
    print(f"{args.model_dir}: {result['messages']} single messages and batches of {result['batch_size']}, {load}")
    print(f"{'path':<28} {'p50 ms':>8} {'p90 ms':>8} {'msgs/s':>8}")
    for key, name in (("fp32", "PyTorch fp32"), ("served", f"served ({result['engine']})")):
        r = result[key]
        print(f"{name:<28} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['msgs_per_s']:>8.0f}")
    print(f"one message {result['speedup_p50']:.1f}x faster; batched {result['speedup_batch']:.1f}x")
    return EXIT_OK


def cmd_example_data(args, settings) -> int:
    from trainer.examples import DEFAULT_TOPICS, chatterbot_rows, write_chatterbot_csv

    topics = tuple(t.strip() for t in args.topics.split(",")) if args.topics else DEFAULT_TOPICS
    try:
        path = write_chatterbot_csv(args.out, topics)
    except FileNotFoundError as exc:
        print(f"error: no such chatterbot-corpus topic ({exc.filename})", file=sys.stderr)
        return EXIT_FAIL
    rows = chatterbot_rows(topics)
    print(f"wrote {len(rows)} examples of {len(topics)} topics to {path}")
    return EXIT_OK


def _eta(seconds) -> str:
    from trainer.progress import approx_duration

    return "-" if seconds is None else approx_duration(seconds)


def _job_line(v) -> str:
    p = v.live
    where = {"queued": f"#{v.position}" if v.position else "paused", "running": p and p.stage}.get(v.status, "")
    if p is not None and p.training:
        where = f"{p.epoch_label} {p.fraction:.0%}"
    result = f"macro-F1 {v.macro_f1:.3f}" if v.macro_f1 is not None else (v.error or "")[:60]
    return f"{v.id:>5}  {v.owner_id:<14.14} {v.name:<18.18} {v.status:<10} {where:<16} {_eta(v.eta_seconds):>8}  {result}"


JOB_HEADER = f"{'job':>5}  {'student':<14} {'model':<18} {'status':<10} {'position/stage':<16} {'ETA':>8}  result"


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def cmd_queue(args, settings) -> int:
    from service import Caller
    from service.runtime import Runtime

    async def go() -> int:
        async with await Runtime.open(settings) as rt:
            svc = rt.service
            if args.queue_command == "submit":
                layers = args.layers if isinstance(args.layers, int) else None
                layer_list = args.layers if isinstance(args.layers, list) else None
                params = dict(text_column=args.text_column, label_column=args.label_column, base=args.base,
                              layers=layers, layer_list=layer_list, strategy=args.strategy, method=args.method,
                              epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              max_length=args.max_length, seed=args.seed, augment=args.augment,
                              teacher_model_id=args.teacher_model)
                caller = Caller(args.guild, args.user, instructor=args.instructor)
                from pathlib import Path

                path = Path(args.file) if args.file else None
                if path is None and not (args.assignment or args.like):
                    print("error: give a FILE to train on (or --assignment / --like to use theirs)", file=sys.stderr)
                    return EXIT_FAIL
                validation = (Path(args.validation).read_bytes(), Path(args.validation).name) if args.validation else None
                name = args.name or (path.stem if path else args.assignment or f"like-{args.like}")
                sub = await svc.submit(caller, path.read_bytes() if path else None, path.name if path else None,
                                       name=name, params=params, validation=validation, assignment=args.assignment,
                                       like=args.like)
                if args.json:
                    print(json.dumps({**sub.job.to_dict(), "rows": sub.rows, "labels": sub.labels,
                                      "warnings": sub.warnings}, ensure_ascii=False))
                else:
                    where = (f"position {sub.job.position}, result expected in {_eta(sub.job.eta_seconds)}"
                             if sub.job.position else "the class queue is paused; it starts when it is resumed")
                    print(f"queued job {sub.job.id} ({sub.rows} examples, {len(sub.labels)} labels): {where}")
                    for w in sub.warnings:
                        print(f"  warning: {w['message']}")
                    print("run `tinytutor scheduler` (or the bot) to work through the queue")
            elif args.queue_command == "list":
                caller = Caller(args.guild, args.user or "operator", operator=True)
                views = await svc.jobs(caller, everyone=not args.user, limit=1000)
                order = {"running": 0, "queued": 1}
                views.sort(key=lambda v: (order.get(v.status, 2), v.position or 0, -v.id))
                if args.json:
                    print(json.dumps([v.to_dict() for v in views], ensure_ascii=False))
                else:
                    print(JOB_HEADER)
                    for v in views:
                        print(_job_line(v))
            else:  # cancel
                view = await svc.cancel(Caller("*", "operator", operator=True), args.job_id)
                print(f"job {view.id}: {'stopping (the scheduler ends its process)' if view.status == 'running' else view.status}")
            return EXIT_OK

    return _run(go())


def _operator(guild: str, user: str = "operator"):
    from service import Caller

    return Caller(guild, user, instructor=True, operator=True)


def _service_command(settings, work) -> int:
    """Run ``await work(service)`` on the configured database (no scheduler started)."""
    from service.runtime import Runtime

    async def go() -> int:
        async with await Runtime.open(settings) as rt:
            return await work(rt.service)

    return _run(go())


def _when(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def cmd_assignment(args, settings) -> int:
    from pathlib import Path

    async def work(svc) -> int:
        if args.assignment_command == "create":
            test = Path(args.test)
            train = Path(args.train) if args.train else None
            view = await svc.create_assignment(
                _operator(args.guild, args.user), args.name, (test.read_bytes(), test.name),
                train=(train.read_bytes(), train.name) if train else None, deadline=args.deadline,
                max_submissions=args.max_submissions, description=args.description)
            if args.json:
                print(json.dumps(view.to_dict(), ensure_ascii=False))
                return EXIT_OK
            print(f"assignment '{view.name}' set: {view.test_rows} hidden test examples, labels "
                  f"{', '.join(view.labels)}; deadline {_when(view.deadline)}; "
                  f"{view.max_submissions or 'unlimited'} submission(s) per student")
            if view.baseline_macro_f1 is not None:
                print(f"TF-IDF baseline on the hidden set (trained on the training file): macro-F1 "
                      f"{view.baseline_macro_f1:.3f}")
            for w in view.warnings or []:
                print(f"  warning: {w}")
        elif args.assignment_command == "list":
            views = await svc.assignments(_operator(args.guild))
            if args.json:
                print(json.dumps([v.to_dict() for v in views], ensure_ascii=False))
                return EXIT_OK
            print(f"{'assignment':<24} {'state':<7} {'deadline':<21} {'test rows':>9} {'labels':>6}  training file")
            for v in views:
                print(f"{v.name:<24.24} {'open' if v.is_open else 'closed':<7} {_when(v.deadline):<21} "
                      f"{v.test_rows:>9} {len(v.labels):>6}  {f'{v.train_rows} rows' if v.train_rows else '-'}")
        else:  # close
            view = await svc.close_assignment(_operator(args.guild), args.name)
            print(f"assignment '{view.name}' closed at {_when(view.closed_at)}")
        return EXIT_OK

    return _service_command(settings, work)


def cmd_leaderboard(args, settings) -> int:
    async def work(svc) -> int:
        caller = _operator(args.guild)
        board = await svc.leaderboard(caller, args.assignment)
        if args.csv:
            from pathlib import Path

            Path(args.csv).write_bytes(await svc.leaderboard_csv(caller, args.assignment))
        if args.json:
            print(json.dumps(board.to_dict(), ensure_ascii=False))
            return EXIT_OK
        a = board.assignment
        print(f"{a.name}: {a.test_rows} hidden test examples, {len(a.labels)} labels; "
              f"{'open' if a.is_open else 'closed'}, deadline {_when(a.deadline)}")
        print("\n".join(board_lines(board, args.all)))
        return EXIT_OK

    return _service_command(settings, work)


def cmd_compare(args, settings) -> int:
    async def work(svc) -> int:
        c = await svc.compare(_operator("*"), args.job_a, args.job_b)
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
            return EXIT_OK
        print("\n".join(comparison_lines(c)))
        return EXIT_OK

    return _service_command(settings, work)


def comparison_lines(c) -> list[str]:
    a, b = c.a, c.b
    out = [f"A: job {a['job_id']} {a['name']} ({a['owner_id']})   B: job {b['job_id']} {b['name']} ({b['owner_id']})", ""]
    out.append("settings that differ:" if c.settings else "settings: the same")
    for name, x, y in c.settings:
        out.append(f"  {name:<18} {_short(x):>20} -> {_short(y)}")
    out += ["", f"{'':<20} {'A':>10} {'B':>10} {'change':>10}"]
    for name, x, y in c.scores + ([(f"hidden set ({c.hidden[0]})", c.hidden[1], c.hidden[2])] if c.hidden else []):
        out.append(f"{name:<20.20} {_num(x):>10} {_num(y):>10} {_num(_delta(x, y), sign=True):>10}")
    out += ["", "per-class F1:"]
    for name, x, y in c.per_class:
        out.append(f"  {name:<18.18} {_num(x):>10} {_num(y):>10} {_num(_delta(x, y), sign=True):>10}")
    if not c.same_test_split:
        out.append("\nnote: different data or seed, so the test splits differ; an assignment's hidden set "
                   "compares runs on the same examples")
    return out


def _delta(x, y):
    return y - x if isinstance(x, int | float) and isinstance(y, int | float) else None


def _num(v, sign: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:+,}" if sign else f"{v:,}"
    return f"{v:+.3f}" if sign else f"{v:.3f}"


def _short(v) -> str:
    text = "-" if v is None else str(v)
    return text if len(text) <= 20 else text[:8] + "…" + text[-8:]


def cmd_web(args, settings) -> int:
    from service import Caller

    if args.web_command == "link":
        async def link(svc) -> int:
            if not args.instructor:
                roles = await svc.member_roles(args.guild)
                if roles.get(args.user) != "instructor":
                    who = "a student" if args.user in roles else "not a member"
                    print(f"error: {args.user} is {who} of class {args.guild}, not an instructor. Instructors get "
                          "a link with /dashboard in Discord; add --instructor to vouch for this user yourself.",
                          file=sys.stderr)
                    return EXIT_FAIL
            print(await svc.mint_link(Caller(args.guild, args.user, instructor=True)))
            return EXIT_OK

        return _service_command(settings, link)
    if args.web_command == "revoke":
        async def revoke(svc) -> int:
            n = await svc.revoke_sessions(args.guild, args.user)
            print(f"{n} dashboard session(s) signed out")
            return EXIT_OK

        return _service_command(settings, revoke)
    return _serve_web(args, settings)


def _serve_web(args, settings) -> int:
    import logging

    from service.runtime import Runtime
    from web.app import make_app, start_site

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = args.host or settings.web.host, args.port or settings.web.port

    async def go() -> int:
        async with await Runtime.open(settings) as rt:
            stop = rt.stop_on_signals()
            runner = await start_site(make_app(rt.service, settings), host, port)
            print(f"dashboard on http://{host}:{port} (links say {settings.web.base_url}); Ctrl-C stops it",
                  file=sys.stderr)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        return EXIT_OK

    return _run(go())


def cmd_scheduler(args, settings) -> int:
    import asyncio
    import contextlib
    import logging

    from service.runtime import Runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def go() -> int:
        async with await Runtime.open(settings) as rt:
            stop = rt.stop_on_signals()
            await rt.start_jobs()
            print(f"scheduler running with {rt.scheduler.slots} slot(s), {rt.scheduler.executor.name} executor, on "
                  f"{_safe_url(settings.database_url)}; "
                  + ("it exits when the queue is empty; " if args.until_idle else "")
                  + "Ctrl-C stops it (running jobs go back to the queue)", file=sys.stderr)
            while not stop.is_set():
                if args.until_idle and await rt.scheduler.idle():
                    print("the queue is empty: no job is running or waiting", file=sys.stderr)
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.queue.dispatch_seconds)
        return EXIT_OK

    return _run(go())


def cmd_gc(args, settings) -> int:
    from core.errors import plural
    from service import Caller

    async def gc(svc) -> int:
        done = await svc.collect_garbage(Caller("*", "operator", operator=True), dry_run=args.dry_run)
        if args.json:
            print(json.dumps(done.to_dict(), indent=2))
            return EXIT_OK
        verb = "would remove" if done.dry_run else "removed"
        cfg = settings.storage
        print(f"{verb} {plural(len(done.uploads), 'upload')} no job, model or assignment uses (kept "
              f"{cfg.keep_uploads_days:g} days), the files of {plural(len(done.jobs), 'failed or cancelled job')} "
              f"(kept {cfg.keep_failed_days:g} days) and {plural(len(done.staged), 'stale staged upload')}: "
              f"{done.files} path(s), {done.bytes / 1e6:,.1f} MB")
        for rel in done.uploads + done.staged:
            print(f"  {rel}")
        return EXIT_OK

    return _service_command(settings, gc)


def cmd_db(args, settings) -> int:
    from storage.db import Database

    async def go() -> int:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        print(f"database at the newest schema: {_safe_url(settings.database_url)}")
        return EXIT_OK

    return _run(go())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_bot(args, settings) -> int:
    import logging

    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        print("error: DISCORD_TOKEN is not set. Create an application with a bot at "
              "https://discord.com/developers/applications, copy the bot's token (Bot → Reset Token), then run\n"
              "  export DISCORD_TOKEN=<the token>\n  tinytutor bot\n"
              "The README's 'Running the bot' section lists the permissions to invite it with.", file=sys.stderr)
        return EXIT_FAIL
    import discord

    from bot.app import create_bot

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        create_bot(settings).run(token, log_handler=None)
    except discord.LoginFailure:
        print("error: Discord refused DISCORD_TOKEN (improper token); reset it in the developer portal.", file=sys.stderr)
        return EXIT_FAIL
    except discord.PrivilegedIntentsRequired as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_demo(args, settings) -> int:
    from .demo import run_demo

    return _run(run_demo(settings, args.dir, args.epochs))


if __name__ == "__main__":
    sys.exit(main())
