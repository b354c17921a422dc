"""The long-running apps: the Discord bot, the dashboard alone, and the demo."""

from __future__ import annotations

import os
import sys

from .common import EXIT_FAIL, EXIT_OK, run, service_command


def add_commands(sub) -> None:
    """web, bot and demo."""
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
    p.set_defaults(run=cmd_web)

    p = sub.add_parser("bot", help="run the Discord bot, with the scheduler and workers (token from DISCORD_TOKEN)")
    p.set_defaults(run=cmd_bot)

    p = sub.add_parser("demo", help="the whole flow offline: a demo class, students, queued jobs, reports, predictions")
    p.add_argument("--executor", choices=("local", "ray"), help="run the demo's jobs as local processes or Ray tasks")
    p.add_argument("--dir", help="where to put the demo's fresh database and files (default: runs/demo-<time>)")
    p.add_argument("--epochs", type=int, help="epochs per demo job (default: the [training] setting)")
    p.set_defaults(run=cmd_demo)


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

        return service_command(settings, link)
    if args.web_command == "revoke":
        async def revoke(svc) -> int:
            n = await svc.revoke_sessions(args.guild, args.user)
            print(f"{n} dashboard session(s) signed out")
            return EXIT_OK

        return service_command(settings, revoke)
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

    return run(go())


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

    return run(run_demo(settings, args.dir, args.epochs))

