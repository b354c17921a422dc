"""Assignments and their boards: assignment create/list/pick/close/reveal/grades, leaderboard, compare."""

from __future__ import annotations

import json

from .common import EXIT_OK, operator, service_command
from .tables import board_lines, shake_up_lines


def add_commands(sub) -> None:
    """assignment, leaderboard and compare."""
    p = sub.add_parser("assignment", help="assignments: a hidden test set every submission is scored on")
    asub = p.add_subparsers(dest="assignment_command", required=True)
    s = asub.add_parser("create", help="set an assignment (the test file is checked, stored, and never shown)")
    s.add_argument("--guild", required=True, help="the class (Discord server id)")
    s.add_argument("--name", required=True)
    s.add_argument("--test", required=True, metavar="FILE", help="the hidden, labelled test file")
    s.add_argument("--train", metavar="FILE", help="a training file students may use (optional)")
    s.add_argument("--deadline", metavar="ISO", help="e.g. 2026-12-15 or 2026-12-15T18:00 (UTC unless an offset is given)")
    s.add_argument("--max-submissions", type=int, metavar="N",
                   help="per student in all (cancelled and failed jobs do not count)")
    s.add_argument("--daily-cap", type=int, metavar="N", help="per student per UTC day")
    s.add_argument("--public-share", type=float, metavar="F",
                   help="the part of the test set the public board is scored on (default 0.3)")
    s.add_argument("--picks", type=int, metavar="N", help="final picks per student (default 2)")
    s.add_argument("--channel", metavar="ID", help="the Discord channel the bot posts the reveal in")
    s.add_argument("--description", default="")
    s.add_argument("--user", default="operator", help="the instructor setting it (default: operator)")
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("list", help="a class's assignments")
    s.add_argument("--guild", required=True)
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("close", help="stop taking submissions (queued ones still run; the board stays)")
    s.add_argument("--guild", required=True)
    s.add_argument("--name", required=True)
    s = asub.add_parser("pick", help="a student's final pick: a submission that counts for the private board")
    s.add_argument("--guild", required=True)
    s.add_argument("--user", required=True, help="the student whose submission it is")
    s.add_argument("--name", required=True)
    s.add_argument("--job", required=True, type=int)
    s.add_argument("--remove", action="store_true", help="take it out of the picks instead")
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("reveal", help="close it and reveal the private board (once its last submissions finish)")
    s.add_argument("--guild", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--json", action="store_true")
    s = asub.add_parser("grades", help="grades as CSV for an LMS: counted submission, private macro-F1, rank, grade")
    s.add_argument("--guild", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--rule", default="linear", help="linear (0 at the baseline, 100 at the best), linear:LOW-HIGH, "
                                                    "or thresholds like A=0.85,B=0.75,C=0.6,F=0")
    s.add_argument("--csv", metavar="FILE", help="write to FILE instead of printing")
    p.set_defaults(run=cmd_assignment)

    p = sub.add_parser("leaderboard", help="an assignment's board: each student's best submission on the hidden set")
    p.add_argument("--guild", required=True)
    p.add_argument("--assignment", required=True, metavar="NAME")
    p.add_argument("--all", action="store_true", help="every submission, not only each student's best")
    p.add_argument("--csv", metavar="FILE", help="also write every submission as CSV to FILE")
    p.add_argument("--as-student", metavar="USER", help="show only what that student may see")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_leaderboard)

    p = sub.add_parser("compare", help="two finished jobs side by side: settings that differ, scores, per-class F1")
    p.add_argument("job_a", type=int)
    p.add_argument("job_b", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_compare)


def _when(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def cmd_assignment(args, settings) -> int:
    from pathlib import Path

    async def work(svc) -> int:
        if args.assignment_command == "create":
            test = Path(args.test)
            train = Path(args.train) if args.train else None
            view = await svc.create_assignment(
                operator(args.guild, args.user), args.name, (test.read_bytes(), test.name),
                train=(train.read_bytes(), train.name) if train else None, deadline=args.deadline,
                max_submissions=args.max_submissions, description=args.description, public_share=args.public_share,
                daily_cap=args.daily_cap, max_picks=args.picks, channel_id=args.channel)
            if args.json:
                print(json.dumps(view.to_dict(), ensure_ascii=False))
                return EXIT_OK
            print(f"assignment '{view.name}' set: {view.test_rows} hidden test examples ({view.public_share:.0%} for "
                  f"the public board), labels {', '.join(view.labels)}; deadline {_when(view.deadline)}; "
                  f"{view.max_submissions or 'unlimited'} submission(s) per student"
                  f"{f', {view.daily_cap} a day' if view.daily_cap else ''}; {view.max_picks} final pick(s)")
            if view.baseline_macro_f1 is not None:
                print(f"TF-IDF baseline on the public part (trained on the training file): macro-F1 "
                      f"{view.baseline_macro_f1:.3f}")
            for w in view.warnings or []:
                print(f"  warning: {w}")
        elif args.assignment_command == "list":
            views = await svc.assignments(operator(args.guild))
            if args.json:
                print(json.dumps([v.to_dict() for v in views], ensure_ascii=False))
                return EXIT_OK
            print(f"{'assignment':<24} {'state':<8} {'deadline':<21} {'test rows':>9} {'public':>6} {'labels':>6}  "
                  "limits per student")
            for v in views:
                caps = ", ".join(c for c in (f"{v.daily_cap} a day" if v.daily_cap else "",
                                             f"{v.max_submissions} in all" if v.max_submissions else "") if c)
                state = "open" if v.is_open else ("revealed" if v.revealed else "closed")
                share = f"{v.public_share:.0%}" if v.public_share is not None else "all"
                print(f"{v.name:<24.24} {state:<8} {_when(v.deadline):<21} {v.test_rows:>9} {share:>6} "
                      f"{len(v.labels):>6}  {caps or 'none'}; {v.max_picks} pick(s)")
        elif args.assignment_command == "pick":
            picks = await svc.pick(operator(args.guild), args.name, args.job, remove=args.remove, student=args.user)
            print(json.dumps(picks.to_dict(), ensure_ascii=False) if args.json else picks.text)
        elif args.assignment_command == "reveal":
            done = await svc.reveal(operator(args.guild), args.name)
            if args.json:
                print(json.dumps({"assignment": done.assignment, "revealed": done.revealed, "waiting": done.waiting,
                                  "board": done.board.to_dict() if done.board else None}, ensure_ascii=False))
            elif not done.revealed:
                print(f"assignment '{done.assignment}' closed; {done.waiting} submission(s) still training: the private "
                      "board is revealed when they finish (by a running scheduler or bot)")
            else:
                print(f"assignment '{done.assignment}' revealed: the bot posts the final board and tells each "
                      "student their place")
                print("\n".join(board_lines(done.board) + (shake_up_lines(done.board) if done.board.shake_up else [])))
        elif args.assignment_command == "grades":
            data = await svc.grades_csv(operator(args.guild), args.name, args.rule)
            if args.csv:
                Path(args.csv).write_bytes(data)
            else:
                print(data.decode("utf-8"), end="")
        else:  # close
            view = await svc.close_assignment(operator(args.guild), args.name)
            print(f"assignment '{view.name}' closed at {_when(view.closed_at)}")
        return EXIT_OK

    return service_command(settings, work)


def cmd_leaderboard(args, settings) -> int:
    async def work(svc) -> int:
        from service import Caller

        caller = Caller(args.guild, args.as_student) if args.as_student else operator(args.guild)
        board = await svc.leaderboard(caller, args.assignment)
        if args.csv:
            from pathlib import Path

            Path(args.csv).write_bytes(await svc.leaderboard_csv(caller, args.assignment))
        if args.json:
            print(json.dumps(board.to_dict(), ensure_ascii=False))
            return EXIT_OK
        a = board.assignment
        state = "revealed" if a.revealed else ("open" if a.is_open else "closed")
        print(f"{a.name}: {a.test_rows} hidden test examples, {len(a.labels)} labels; {state}, deadline "
              f"{_when(a.deadline)}; {'the final board (private part)' if board.board == 'private' else 'the public board'}")
        print("\n".join(board_lines(board, args.all)))
        if board.shake_up:
            print("\n".join(shake_up_lines(board)))
        return EXIT_OK

    return service_command(settings, work)


def cmd_compare(args, settings) -> int:
    async def work(svc) -> int:
        c = await svc.compare(operator("*"), args.job_a, args.job_b)
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
            return EXIT_OK
        print("\n".join(comparison_lines(c)))
        return EXIT_OK

    return service_command(settings, work)


def comparison_lines(c) -> list[str]:
    a, b = c.a, c.b
    out = [f"A: job {a['job_id']} {a['name']} ({a['owner_id']})   B: job {b['job_id']} {b['name']} ({b['owner_id']})", ""]
    out.append("settings that differ:" if c.settings else "settings: the same")
    for name, x, y in c.settings:
        out.append(f"  {name:<18} {_short(x):>20} -> {_short(y)}")
    out += ["", f"{'':<20} {'A':>10} {'B':>10} {'change':>10}"]
    for name, x, y in c.scores + ([(f"public board ({c.hidden[0]})", c.hidden[1], c.hidden[2])] if c.hidden else []):
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
