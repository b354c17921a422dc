"""The dashboard's routes. Handlers translate HTTP to service calls and back, nothing more.

Rules every request goes through (``guard`` middleware):
- a session cookie naming a live session of a user still recorded as an instructor, else the
  sign-in page (HTML) or 401 (the live fragment);
- every POST carries the session's CSRF token (a hidden form field), else 403; the sign-in form
  carries a token bound to a short-lived cookie instead (no session exists yet);
- pages show the session's class only: the service is always called as that instructor of that class.
Responses carry a strict Content-Security-Policy (scripts from this server only), no framing, and no
referrer (a sign-in link's token never leaks to another site).
"""

from __future__ import annotations

import logging
import math
import secrets
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from service.access import SignInRefused, same_token
from service.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, ServiceError
from service.views import FINISHED, QUEUED, RUNNING, approx_duration

log = logging.getLogger("tinytutor.web")

COOKIE = "tt_session"
SIGNIN_COOKIE = "tt_signin"
SERVICE = web.AppKey("service", object)
SETTINGS = web.AppKey("settings", object)
WHO = web.RequestKey("who", object)  # service.WebIdentity of the signed-in instructor
FORM = web.RequestKey("form", object)  # a POST's form, read (and its CSRF token checked) by the guard
OPEN_PATHS = ("/signin", "/static/", "/healthz")


def make_app(service, settings) -> web.Application:
    """The dashboard's application. Refuses (ConfigError) an address instructors would reach over plain
    HTTP from another machine, unless [web].allow_insecure_http (then it warns)."""
    insecure = settings.web.check_transport()
    if insecure:
        log.warning("%s", insecure)
    app = web.Application(middlewares=[security_headers, guard])
    app[SERVICE], app[SETTINGS] = service, settings
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("web", "templates"), autoescape=True,
                         context_processors=[_context])
    env = aiohttp_jinja2.get_env(app)
    env.filters["pct"] = lambda v: f"{v:.0%}"
    env.globals["eta"] = eta
    env.filters["params"] = lambda n: f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"
    env.filters["marked"] = marked
    for name in env.list_templates():  # compiled now, not on the first request (a 200 ms stall measured)
        env.get_template(name)
    app.router.add_static("/static/", Path(__file__).parent / "static", append_version=True)
    app.add_routes([
        web.get("/", home), web.get("/healthz", healthz), web.post("/signout", signout),
        web.get("/signin", signin_page), web.post("/signin", signin),
        web.get("/queue", queue_page), web.get("/queue/live", queue_live),
        web.post("/queue/pause", pause), web.post("/queue/resume", resume),
        web.post("/jobs/{id:\\d+}/cancel", cancel), web.post("/jobs/{id:\\d+}/priority", priority),
        web.get("/jobs/{id:\\d+}", report_page), web.get("/jobs/{id:\\d+}/cell", cell_page),
        web.get("/jobs/{id:\\d+}/{plot:confusion|curve|learning}.png", plot),
        web.get("/experiments", experiments_page), web.get("/experiments/{id:\\d+}", experiment_page),
        web.get("/experiments/{id:\\d+}/chart.png", experiment_chart), web.get("/students", students_page),
        web.get("/quotas", quotas_page), web.post("/quotas", set_quotas), web.get("/assignments", assignments_page),
        web.get("/assignments/{name}", leaderboard_page), web.get("/assignments/{name}/{what:submissions|grades}.csv", export),
        web.post("/assignments/{name}/pick", pick), web.post("/assignments/{name}/reveal", reveal),
    ])
    return app


# -- middleware --------------------------------------------------------------------------------------

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ERROR_STATUS = {NotFound: 404, PermissionDenied: 403, Conflict: 409}  # other refusals: 400


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and refusals raised as exceptions get them too
        exc.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in exc.headers})
        raise
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


@web.middleware
async def guard(request: web.Request, handler):
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    service = request.app[SERVICE]
    who = await service.web_identity(request.cookies.get(COOKIE))
    if who is None:
        if request.path == "/queue/live":
            raise web.HTTPUnauthorized(text="signed out")
        return await _render(request, "signin.html", {"token": None, "problem": None}, status=401)
    request[WHO] = who
    if request.method == "POST":
        form = await request.post()
        if not same_token(form.get("csrf"), who.csrf):
            log.warning("dashboard: a POST to %s without a valid CSRF token was refused", request.path)
            raise web.HTTPForbidden(text="This form has expired or did not come from the dashboard; reload the page.")
        request[FORM] = form
    try:
        return await handler(request)
    except ServiceError as exc:  # a refusal the service explains: shown as it would be in Discord
        status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
        return await _render(request, "error.html", {"message": str(exc)}, status=status)


async def _context(request: web.Request) -> dict:
    who = request.get(WHO)
    settings = request.app[SETTINGS]
    return {"who": who, "csrf": who.csrf if who else "", "refresh_ms": int(settings.web.refresh_seconds * 1000),
            "path": request.path}


async def _render(request, template: str, context: dict, status: int = 200) -> web.Response:
    """A page outside a routed handler (the guard's answers): the shared context is added here."""
    return aiohttp_jinja2.render_template(template, request, await _context(request) | context, status=status)


def _here(path: str | None, default: str) -> str:
    """A form's "back" field if it is a path on this site; anything else (``https://evil.example``,
    ``//evil.example``, ``/\\evil.example``) is the default, so a form cannot redirect off the site."""
    if path and path.startswith("/") and not path.startswith(("//", "/\\")) and "\\" not in path:
        return path
    return default


def _redirect(to: str) -> NoReturn:
    """Answer a form with "303 See Other" (post/redirect/get: a reload does not post it again)."""
    raise web.HTTPSeeOther(to)


def marked(text: str, explanation: dict | None):
    """A text, escaped, with the words that drove its prediction in <mark> (an explanation's top_spans)."""
    from markupsafe import Markup, escape

    spans = sorted((explanation or {}).get("top_spans") or [])
    out, at = [], 0
    for start, end in spans:
        if start < at or end > len(text):  # not this text's spans: show it plain
            return escape(text)
        out += [escape(text[at:start]), Markup("<mark>"), escape(text[start:end]), Markup("</mark>")]
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def eta(seconds) -> str:
    """When something is expected, in words (the page refreshes, so a relative time stays true)."""
    return "–" if seconds is None else f"in {approx_duration(seconds)}"


def _page(request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")))
    except ValueError:
        return 1


async def home(request: web.Request) -> web.Response:
    _redirect("/queue")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# -- signing in --------------------------------------------------------------------------------------

async def signin_page(request: web.Request) -> web.Response:
    """A link opens this page with a button: link previews (Discord unfurls links) only GET, so they
    cannot use up the single-use link; the instructor's click POSTs it."""
    token = request.query.get("token")
    nonce = secrets.token_urlsafe(16)
    response = await _render(request, "signin.html", {"token": token, "signin_csrf": nonce, "problem": None})
    _set_cookie(request, response, SIGNIN_COOKIE, nonce, max_age=600)
    return response


async def signin(request: web.Request) -> web.Response:
    form = await request.post()
    if not same_token(form.get("signin_csrf"), request.cookies.get(SIGNIN_COOKIE)):
        raise web.HTTPForbidden(text="Open the sign-in link again and press the button.")
    try:
        token = await request.app[SERVICE].redeem_link(form.get("token", ""))
    except SignInRefused as exc:
        return await _render(request, "signin.html", {"token": None, "problem": str(exc)}, status=403)
    response = web.HTTPSeeOther("/queue")
    _set_cookie(request, response, COOKIE, token, max_age=int(request.app[SETTINGS].web.session_hours * 3600))
    response.del_cookie(SIGNIN_COOKIE, path="/")
    raise response


async def signout(request: web.Request) -> web.Response:
    await request.app[SERVICE].end_session(request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/")
    raise response


def _set_cookie(request, response, name: str, value: str, max_age: int) -> None:
    secure = request.app[SETTINGS].web.base_url.startswith("https://")
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure)


# -- the queue ---------------------------------------------------------------------------------------

async def _queue_context(request: web.Request) -> dict:
    service, who = request.app[SERVICE], request[WHO]
    size = request.app[SETTINGS].web.page_size
    page = _page(request)
    live = await service.class_queue(who.caller)  # running, then queued in start order: never truncated
    total = await service.count_jobs(who.caller, everyone=True, statuses=FINISHED)
    pages = max(1, math.ceil(total / size))
    page = min(page, pages)
    finished = await service.jobs(who.caller, everyone=True, statuses=FINISHED, limit=size, offset=(page - 1) * size)
    quotas = await service.quotas(who.caller)
    return {"names": await service.member_names(who.caller),"running": [v for v in live if v.status == RUNNING], "queued": [v for v in live if v.status == QUEUED],
            "finished": finished, "page": page, "pages": pages, "total": total, "paused": quotas["paused"]}


@aiohttp_jinja2.template("queue.html")
async def queue_page(request: web.Request) -> dict:
    return await _queue_context(request)


@aiohttp_jinja2.template("queue_live.html")
async def queue_live(request: web.Request) -> dict:
    return await _queue_context(request)


async def pause(request: web.Request) -> web.Response:
    await request.app[SERVICE].set_paused(request[WHO].caller, True)
    _redirect("/queue")


async def resume(request: web.Request) -> web.Response:
    await request.app[SERVICE].set_paused(request[WHO].caller, False)
    _redirect("/queue")


async def cancel(request: web.Request) -> web.Response:
    await request.app[SERVICE].cancel(request[WHO].caller, int(request.match_info["id"]))
    _redirect(_here(request[FORM].get("back"), "/queue"))


async def priority(request: web.Request) -> web.Response:
    try:
        value = int(request[FORM].get("priority", ""))
    except ValueError:
        raise InvalidRequest("Priority must be a whole number (higher runs first).") from None
    await request.app[SERVICE].set_priority(request[WHO].caller, int(request.match_info["id"]), value)
    _redirect("/queue")


# -- reports, students, quotas, assignments -----------------------------------------------------------

@aiohttp_jinja2.template("report.html")
async def report_page(request: web.Request) -> dict:
    service, who = request.app[SERVICE], request[WHO]
    job = await service.job(who.caller, int(request.match_info["id"]))
    try:
        rep = await service.report(who.caller, job.id)
    except Conflict:
        rep = None
    names = await service.member_names(who.caller)
    return {"job": job, "rep": rep, "m": rep.metrics if rep else None, "owner": names.get(job.owner_id, job.owner_id)}


@aiohttp_jinja2.template("cell.html")
async def cell_page(request: web.Request) -> dict:
    """One cell of a report's confusion matrix: the test examples in it (``?label=&predicted=``)."""
    service, who = request.app[SERVICE], request[WHO]
    label, predicted = request.query.get("label", ""), request.query.get("predicted", "")
    rep, examples = await service.confusion_cell(who.caller, int(request.match_info["id"]), label, predicted)
    return {"rep": rep, "label": label, "predicted": predicted, "examples": examples}


async def plot(request: web.Request) -> web.StreamResponse:
    rep = await request.app[SERVICE].report(request[WHO].caller, int(request.match_info["id"]))
    path = {"confusion": rep.confusion_png, "curve": rep.curve_png,
            "learning": rep.learning_curve_png}[request.match_info["plot"]]
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="This plot's file is gone.")
    return web.FileResponse(path, headers={"Content-Type": "image/png"})  # sent without blocking the loop


@aiohttp_jinja2.template("experiments.html")
async def experiments_page(request: web.Request) -> dict:
    service, who = request.app[SERVICE], request[WHO]
    return {"experiments": await service.experiments(who.caller, everyone=True),
            "names": await service.member_names(who.caller)}


@aiohttp_jinja2.template("experiment.html")
async def experiment_page(request: web.Request) -> dict:
    service, who = request.app[SERVICE], request[WHO]
    view = await service.experiment(who.caller, int(request.match_info["id"]))
    return {"x": view, "owner": (await service.member_names(who.caller)).get(view.owner_id, view.owner_id)}


async def experiment_chart(request: web.Request) -> web.StreamResponse:
    view = await request.app[SERVICE].experiment(request[WHO].caller, int(request.match_info["id"]))
    if view.chart_png is None or not view.chart_png.is_file():
        raise web.HTTPNotFound(text="This experiment has no chart (yet).")
    return web.FileResponse(view.chart_png, headers={"Content-Type": "image/png"})


@aiohttp_jinja2.template("students.html")
async def students_page(request: web.Request) -> dict:
    return {"students": await request.app[SERVICE].students(request[WHO].caller)}


@aiohttp_jinja2.template("quotas.html")
async def quotas_page(request: web.Request) -> dict:
    return {"quotas": await request.app[SERVICE].quotas(request[WHO].caller), "saved": "saved" in request.query}


async def set_quotas(request: web.Request) -> web.Response:
    from service.base import QUOTA_NAMES

    values = {}
    for key in QUOTA_NAMES:
        raw = (request[FORM].get(key) or "").strip()
        if raw:
            try:
                values[key] = int(raw)
            except ValueError:
                raise InvalidRequest(f"{key} must be a whole number, not {raw!r}.") from None
    await request.app[SERVICE].set_quotas(request[WHO].caller, **values)
    _redirect("/quotas?saved=1")


@aiohttp_jinja2.template("assignments.html")
async def assignments_page(request: web.Request) -> dict:
    return {"assignments": await request.app[SERVICE].assignments(request[WHO].caller)}


@aiohttp_jinja2.template("leaderboard.html")
async def leaderboard_page(request: web.Request) -> dict:
    service, who = request.app[SERVICE], request[WHO]
    board = await service.leaderboard(who.caller, request.match_info["name"])
    return {"board": board, "a": board.assignment, "names": await service.member_names(who.caller)}


async def export(request: web.Request) -> web.Response:
    """Every submission (``submissions.csv``), or the grades by the page's rule (``grades.csv``; GradeRule.parse)."""
    service, caller, name = request.app[SERVICE], request[WHO].caller, request.match_info["name"]
    what = request.match_info["what"]
    data = await (service.grades_csv(caller, name, request.query.get("rule") or "linear") if what == "grades"
                  else service.leaderboard_csv(caller, name))
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    return web.Response(body=data, content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{safe}-{what}.csv"'})


async def pick(request: web.Request) -> web.Response:
    """An instructor picks (or removes) a submission for its student, as the student would."""
    form, name = request[FORM], request.match_info["name"]
    await request.app[SERVICE].pick(request[WHO].caller, name, form.get("job", ""), remove=form.get("remove") == "1",
                                    student=form.get("student") or None)
    _redirect(f"/assignments/{quote(name)}")


async def reveal(request: web.Request) -> web.Response:
    await request.app[SERVICE].reveal(request[WHO].caller, request.match_info["name"])
    _redirect(f"/assignments/{quote(request.match_info['name'])}")


# -- serving -----------------------------------------------------------------------------------------

async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` in the running event loop (the bot's, or ``tinytutor web``'s); stop with ``runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None)  # sign-in links carry their token in the query: never logged
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

