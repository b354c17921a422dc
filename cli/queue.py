"""Running the class queue: queue submit/list/cancel, experiments, the scheduler, gc and the database's schema."""

from __future__ import annotations

import json
import sys

from .common import EXIT_FAIL, EXIT_OK, run, safe_url, service_command
from .local import add_train_flags


def _eta(seconds) -> str:
    from trainer.progress import approx_duration

    return "-" if seconds is None else approx_duration(seconds)


def job_line(v) -> str:
    p = v.live
    where = {"queued": f"#{v.position}" if v.position else "paused", "running": p and p.stage}.get(v.status, "")
    if p is not None and p.training:
        where = f"{p.epoch_label} {p.fraction:.0%}"
    result = f"macro-F1 {v.macro_f1:.3f}" if v.macro_f1 is not None else (v.error or "")[:60]
    return f"{v.id:>5}  {v.owner_id:<14.14} {v.name:<18.18} {v.status:<10} {where:<16} {_eta(v.eta_seconds):>8}  {result}"


JOB_HEADER = f"{'job':>5}  {'student':<14} {'model':<18} {'status':<10} {'position/stage':<16} {'ETA':>8}  result"


def add_commands(sub) -> None:
    """queue, experiment, scheduler, gc and db."""
    p = sub.add_parser("queue", help="the class job queue, on the database the bot uses")
    qsub = p.add_subparsers(dest="queue_command", required=True)
    s = qsub.add_parser("submit", help="queue a training job for a student (checked first; nothing stored if bad)")
    add_train_flags(s, queued=True)
    s.add_argument("--guild", required=True, help="the class (Discord server id)")
    s.add_argument("--user", required=True, help="the student (Discord user id)")
    s.add_argument("--name", help="the model's name (default: the file's name)")
    s.add_argument("--instructor", action="store_true", help="submit as an instructor (runs before students' jobs)")
    s.add_argument("--teacher-model", type=int, metavar="MODEL_ID",
                   help="distill from this model of the class (same labels); implies --method distill")
    s.add_argument("--assignment", metavar="NAME", help="submit to this assignment (scored on its hidden test set)")
    s.add_argument("--like", type=int, metavar="JOB_ID",
                   help="start from this job's settings (flags given here override them); without FILE, its file")
    s.add_argument("--sweep", metavar="SETTING=V1,V2,...",
                   help="an experiment: one job per value of layers, max_length, method, strategy or train_share, "
                        "all else equal (e.g. layers=1,2,3,6), announced together with one chart when the last ends")
    s.add_argument("--json", action="store_true")
    s = qsub.add_parser("list", help="a class's jobs: running, then queued in start order, then finished")
    s.add_argument("--guild", required=True)
    s.add_argument("--user", help="only this student's jobs")
    s.add_argument("--json", action="store_true")
    s = qsub.add_parser("cancel", help="cancel a queued job, or stop a running one")
    s.add_argument("job_id", type=int)
    p.set_defaults(run=cmd_queue)

    p = sub.add_parser("experiment", help="an experiment's runs side by side: table, Pareto front and chart")
    p.add_argument("experiment_id", type=int)
    p.add_argument("--json", action="store_true", help="print it as one JSON object")
    p.set_defaults(run=cmd_experiment)

    p = sub.add_parser("scheduler", help="run the scheduler and its workers (no Discord) until Ctrl-C")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where jobs run: local processes, or Ray tasks ([ray] in config.toml); default [queue].executor")
    p.add_argument("--until-idle", action="store_true",
                   help="exit once no job is running or queued (a paused class's jobs wait): for scripts")
    p.set_defaults(run=cmd_scheduler)

    p = sub.add_parser("gc", help="remove what [storage] retention lets go: old unused uploads, failed jobs' files")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and remove nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=cmd_gc)

    p = sub.add_parser("db", help="the database schema")
    dsub = p.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="migrate the database to the newest schema (the app also does this at start)")
    p.set_defaults(run=cmd_db)


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
                              teacher_model_id=args.teacher_model, train_share=args.train_share)
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
                                       like=args.like, sweep=args.sweep)
                if args.json:
                    extra = ({"experiment_id": sub.experiment_id, "jobs": [j.to_dict() for j in sub.jobs]}
                             if sub.experiment_id else {})
                    if sub.assignment is not None:
                        extra["assignment"] = sub.assignment.to_dict()
                    print(json.dumps({**sub.job.to_dict(), "rows": sub.rows, "labels": sub.labels,
                                      "warnings": sub.warnings, **extra}, ensure_ascii=False))
                else:
                    where = (f"position {sub.job.position}, result expected in {_eta(sub.job.eta_seconds)}"
                             if sub.job.position else "the class queue is paused; it starts when it is resumed")
                    if sub.experiment_id:
                        print(f"queued experiment {sub.experiment_id}: jobs "
                              + ", ".join(f"{j.id} ({j.name.rsplit(' ', 1)[-1]})" for j in sub.jobs)
                              + f" ({sub.rows} examples, {len(sub.labels)} labels); the first: {where}")
                        print(f"`tinytutor experiment {sub.experiment_id}` shows the runs side by side")
                    else:
                        print(f"queued job {sub.job.id} ({sub.rows} examples, {len(sub.labels)} labels): {where}")
                    if sub.assignment is not None:
                        print(f"submitted to assignment '{sub.assignment.name}' (scored on both parts of its hidden "
                              f"set; the public part's score is shown until the reveal): {sub.assignment.limits}")
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
                        print(job_line(v))
            else:  # cancel
                view = await svc.cancel(Caller("*", "operator", operator=True), args.job_id)
                print(f"job {view.id}: {'stopping (the scheduler ends its process)' if view.status == 'running' else view.status}")
            return EXIT_OK

    return run(go())


def cmd_experiment(args, settings) -> int:
    from service import Caller

    async def show(svc) -> int:
        view = await svc.experiment(Caller("*", "operator", operator=True), args.experiment_id)
        if args.json:
            print(json.dumps(view.to_dict(), ensure_ascii=False))
            return EXIT_OK
        state = "finished" if view.finished_at else "running"
        print(f"experiment {view.id} {view.name!r} of {view.owner_id}: {view.setting} = "
              f"{', '.join(map(str, view.values))} ({state})")
        print(view.table())
        if view.finished_at:
            print(view.reading())
            if not view.is_curve:
                print("◆ on the Pareto front: no other run is both as fast and as good")
        if view.chart_png:
            print(f"chart: {view.chart_png}")
        return EXIT_OK

    return service_command(settings, show)


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
                  f"{safe_url(settings.database_url)}; "
                  + ("it exits when the queue is empty; " if args.until_idle else "")
                  + "Ctrl-C stops it (running jobs go back to the queue)", file=sys.stderr)
            while not stop.is_set():
                if args.until_idle and await rt.scheduler.idle():
                    print("the queue is empty: no job is running or waiting", file=sys.stderr)
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.queue.dispatch_seconds)
        return EXIT_OK

    return run(go())


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

    return service_command(settings, gc)


def cmd_db(args, settings) -> int:
    from storage.db import Database

    async def go() -> int:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        print(f"database at the newest schema: {safe_url(settings.database_url)}")
        return EXIT_OK

    return run(go())
