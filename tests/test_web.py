"""The dashboard's routes and rules through aiohttp's test client, on SQLite and PostgreSQL: signing
in with a link (once, in time, unforged), sessions (revoked, expired with the instructor's role),
CSRF on every form, one class only, pages and their controls. The browser tests are in
test_web_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import (
    ALICE,
    BOB,
    DISCORD_ALICE,
    GOOD,
    MALLORY,
    OTHER_TEACH,
    TEACH,
    TEACHER,
    Clock,
    free_port,
    scored,
)
from sqlalchemy import select, update

from service import Service
from service.errors import PermissionDenied
from storage.models import Job, Member, Outbox, WebSession, utcnow
from web.app import COOKIE, make_app


@pytest.fixture
async def site(db, settings_for, db_url, monkeypatch):
    monkeypatch.setenv("TINYTUTOR_WEB_SECRET", "a test secret that is long enough")
    settings = settings_for(db_url, web={"public_url": "http://127.0.0.1:9", "page_size": 5})
    service = Service(db, settings, clock=Clock())
    made = []

    async def client() -> TestClient:
        c = TestClient(TestServer(make_app(service, settings)))
        await c.start_server()
        made.append(c)
        return c

    yield service, client
    for c in made:
        await c.close()


async def sign_in(client: TestClient, url: str):
    """Open a sign-in link and press its button, as a browser would."""
    path = url.split("127.0.0.1:9", 1)[1]
    page = await client.get(path)
    assert page.status == 200
    html = await page.text()
    fields = dict(re.findall(r'name="(token|signin_csrf)" value="([^"]*)"', html))
    return await client.post("/signin", data=fields, allow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_no_session_shows_the_sign_in_page_and_a_link_signs_in_once(site):
    service, make = site
    client = await make()
    r = await client.get("/queue")
    assert r.status == 401 and "Sign in with a link" in await r.text()
    assert (await client.get("/queue/live")).status == 401
    assert r.headers["Referrer-Policy"] == "no-referrer" and "script-src 'self'" in r.headers["Content-Security-Policy"]

    url = await service.mint_link(TEACH)
    assert url.startswith("http://127.0.0.1:9/signin?token=")
    page = await client.get(url.split("127.0.0.1:9", 1)[1])
    fields = dict(re.findall(r'name="(token|signin_csrf)" value="([^"]*)"', await page.text()))
    refused = await client.post("/signin", data={"token": fields["token"]}, allow_redirects=False)
    assert refused.status == 403  # the sign-in form's own CSRF token is missing

    r = await sign_in(client, url)
    assert r.status == 303 and r.headers["Location"] == "/queue"
    cookie = r.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]  # http here
    page = await client.get("/queue")
    assert page.status == 200 and "Class queue" in await page.text()

    again = await sign_in(await make(), url)  # the same link, in another browser
    assert again.status == 403 and "already used" in await again.text()


async def test_forged_and_expired_links_and_student_links_are_refused(site, db):
    service, make = site
    client = await make()
    url = await service.mint_link(TEACH)
    forged = url[:-3] + ("abc" if not url.endswith("abc") else "xyz")
    r = await sign_in(client, forged)
    assert r.status == 403 and "not a valid sign-in link" in await r.text()
    with pytest.raises(PermissionDenied):
        await service.mint_link(ALICE)  # a student's link cannot be minted

    url = await service.mint_link(TEACH)
    service.clock.advance(minutes=service.settings.web.link_minutes, seconds=1)
    r = await sign_in(client, url)
    assert r.status == 403 and "expired" in await r.text()
    assert (await client.get("/queue")).status == 401


async def test_revoked_and_demoted_sessions_end(site, db):
    service, make = site
    client = await make()
    await sign_in(client, await service.mint_link(TEACH))
    assert (await client.get("/queue")).status == 200
    async with db.transaction() as s:  # the bot recorded them as a student at their latest command
        await s.execute(update(Member).where(Member.user_id == "teacher").values(role="student"))
    assert (await client.get("/queue")).status == 401
    async with db.transaction() as s:
        await s.execute(update(Member).where(Member.user_id == "teacher").values(role="instructor"))
    assert (await client.get("/queue")).status == 200
    assert await service.revoke_sessions("class-a") == 1
    assert (await client.get("/queue")).status == 401

    await sign_in(client, await service.mint_link(TEACH))
    page = await client.get("/queue")
    r = await client.post("/signout", data={"csrf": csrf_of(await page.text())}, allow_redirects=False)
    assert r.status == 303
    assert (await client.get("/queue")).status == 401

    await sign_in(client, await service.mint_link(TEACH))
    async with db.transaction() as s:
        await s.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.get("/queue")).status == 401


async def test_forms_need_the_csrf_token_and_steer_the_class(site, db):
    service, make = site
    client = await make()
    a = await service.submit(ALICE, GOOD, "a.csv", name="alice-model")
    b = await service.submit(BOB, GOOD, "b.csv", name="bob-model")
    await sign_in(client, await service.mint_link(TEACH))
    html = await (await client.get("/queue")).text()
    assert "alice-model" in html and "bob-model" in html and 'id="queued"' in html
    token = csrf_of(html)

    r = await client.post(f"/jobs/{a.job.id}/cancel", data={}, allow_redirects=False)
    assert r.status == 403 and (await service.job(TEACH, a.job.id)).status == "queued"
    assert r.headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in r.headers  # raised ones too
    r = await client.post(f"/jobs/{a.job.id}/cancel", data={"csrf": "not-the-token"}, allow_redirects=False)
    assert r.status == 403 and (await service.job(TEACH, a.job.id)).status == "queued"
    r = await client.post(f"/jobs/{a.job.id}/cancel", data={"csrf": token}, allow_redirects=False)
    assert r.status == 303 and (await service.job(TEACH, a.job.id)).status == "cancelled"

    await client.post(f"/jobs/{b.job.id}/priority", data={"csrf": token, "priority": "7"})
    assert (await service.job(TEACH, b.job.id)).priority == 7
    bad = await client.post(f"/jobs/{b.job.id}/priority", data={"csrf": token, "priority": "soon"})
    assert bad.status == 400 and "whole number" in await bad.text()
    await client.post("/queue/pause", data={"csrf": token})
    assert (await service.quotas(TEACH))["paused"] is True
    assert 'id="paused"' in await (await client.get("/queue/live")).text()
    await client.post("/queue/resume", data={"csrf": token})
    assert (await service.quotas(TEACH))["paused"] is False

    r = await client.post("/quotas", data={"csrf": token, "max_epochs": "12", "max_rows": ""})
    assert "Saved." in await r.text() and (await service.quotas(TEACH))["max_epochs"] == 12
    for bad in ("0", str(2**40)):  # 2**40 once reached PostgreSQL and failed there (a 500)
        r = await client.post("/quotas", data={"csrf": token, "max_epochs": bad})
        assert r.status == 400 and "from 1 to 2,147,483,647" in await r.text()
    r = await client.post(f"/jobs/{b.job.id}/priority", data={"csrf": token, "priority": str(2**40)})
    assert r.status == 400 and "Priority must be between" in await r.text()
    assert (await service.job(TEACH, b.job.id)).priority == 7
    assert (await client.post("/quotas", data={"max_epochs": "99"})).status == 403
    assert (await service.quotas(TEACH))["max_epochs"] == 12

    students = await (await client.get("/students")).text()
    assert "Alice" in students and "Bob" in students
    report = await (await client.get(f"/jobs/{b.job.id}")).text()
    assert "No report yet (queued)" in report


async def test_an_instructor_of_another_class_sees_nothing_of_this_one(site, db):
    service, make = site
    client = await make()
    a = await service.submit(ALICE, GOOD, "a.csv", name="alice-model")
    await service.create_assignment(TEACH, "topics", (GOOD, "hidden.csv"))
    await sign_in(client, await service.mint_link(OTHER_TEACH))
    html = await (await client.get("/queue")).text()
    assert "alice-model" not in html and "Nothing is waiting" in html
    assert (await client.get(f"/jobs/{a.job.id}")).status == 404
    assert (await client.get(f"/jobs/{a.job.id}/confusion.png")).status == 404
    token = csrf_of(html)
    assert (await client.post(f"/jobs/{a.job.id}/cancel", data={"csrf": token})).status == 404
    assert (await service.job(TEACH, a.job.id)).status == "queued"
    assert "No assignments yet" in await (await client.get("/assignments")).text()
    assert (await client.get("/assignments/topics")).status == 404
    assert (await client.get("/assignments/topics/submissions.csv")).status == 404
    assert "Alice" not in await (await client.get("/students")).text()
    await service.submit(MALLORY, GOOD, "m.csv", name="mallory-model")  # their own class does show
    assert "mallory-model" in await (await client.get("/queue")).text()


async def test_finished_jobs_are_paged_not_cut(site, db):
    service, make = site
    await service.set_quotas(TEACH, max_queued_per_student=100, max_jobs_per_day=100)
    ids = []
    for i in range(12):
        sub = await service.submit(ALICE, GOOD, "a.csv", name=f"run-{i:02d}")
        await service.cancel(ALICE, sub.job.id)
        ids.append(sub.job.id)
    client = await make()
    await sign_in(client, await service.mint_link(TEACH))
    seen = []
    for page in (1, 2, 3):
        html = await (await client.get(f"/queue?page={page}")).text()
        seen += [int(x) for x in re.findall(r'<tr id="job-(\d+)" data-status="cancelled">', html)]
        assert "Finished (12)" in html
        if page == 1:
            assert 'href="/queue?page=2"' in html and 'href="/queue?page=3"' in html
    assert sorted(seen) == sorted(ids) and len(seen) == 12  # every job once, across three pages


async def test_dashboard_command_says_when_the_dashboard_is_off(env):

    calls = await env.run(TEACHER, "dashboard")
    assert calls[0].ephemeral and "not switched on" in calls[0].content


@pytest.mark.settings(web={"enabled": True, "public_url": "https://tutor.example.edu"})
async def test_dashboard_command_gives_instructors_a_private_link(env):
    from fake_discord import User

    calls = await env.run(DISCORD_ALICE, "dashboard")
    assert calls[0].ephemeral and "for instructors" in calls[0].content
    ta = User(105, "ta2", roles=(555,))  # the configured instructor role
    for who in (TEACHER, ta):
        calls = await env.run(who, "dashboard")
        assert calls[0].ephemeral and "<https://tutor.example.edu/signin?token=" in calls[0].content
    token = calls[0].content.split("token=")[1].split(">")[0]
    session = await env.bot.service.redeem_link(token)  # the TA's link signs the TA in, once
    who = await env.bot.service.web_identity(session)
    assert who.caller.user_id == str(ta.id) and who.caller.guild_id == str(env.bot.settings.discord.guild_id)


def test_web_link_on_the_command_line_is_for_instructors_only(tmp_path, monkeypatch, capsys):
    from cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYTUTOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("TINYTUTOR_WEB_SECRET", "a command-line secret, long enough")
    monkeypatch.setenv("TINYTUTOR_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text('[storage]\ndata_dir = "d"\n[web]\npublic_url = "https://t.example"\n')
    assert main(["web", "link", "--guild", "g", "--user", "ann"]) == 1
    assert "not a member of class g, not an instructor" in capsys.readouterr().err
    assert main(["web", "link", "--guild", "g", "--user", "ms-t", "--instructor"]) == 0
    assert capsys.readouterr().out.startswith("https://t.example/signin?token=")
    assert main(["web", "link", "--guild", "g", "--user", "ms-t"]) == 0  # now recorded as one
    assert main(["web", "revoke", "--guild", "g"]) == 0
    assert "0 dashboard session(s) signed out" in capsys.readouterr().out


async def test_the_bot_serves_the_dashboard_in_its_own_loop_when_enabled(tmp_path, settings_for, monkeypatch):

    import aiohttp
    import discord
    from fake_discord import GUILD_ID, FakeDiscord

    from bot.app import create_bot

    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base}/api/v10")
    port = free_port()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", discord={"guild_id": str(GUILD_ID)},
                            web={"enabled": True, "port": port})
    bot = create_bot(settings)
    try:
        await bot.login("fake-token")
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/queue") as r:
            assert r.status == 401 and "Instructor dashboard" in await r.text()
    finally:
        await bot.close()
        await fake.stop()
    async with aiohttp.ClientSession() as http:  # closing the bot stopped the dashboard
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/healthz")


async def test_a_stale_role_is_asked_of_discord_and_a_demoted_instructor_loses_every_session(site, db):
    service, make = site
    first, second = await make(), await make()  # two browsers, two sessions
    await sign_in(first, await service.mint_link(TEACH))
    await sign_in(second, await service.mint_link(TEACH))
    asked = []

    async def discord_says(answer):
        async def check(guild_id, user_id):
            asked.append((guild_id, user_id))
            return answer
        return check

    service.role_check = await discord_says(False)
    assert (await first.get("/queue")).status == 200 and asked == []  # recorded minutes ago: not asked
    async with db.transaction() as s:  # ...now the recorded role is older than role_check_minutes
        await s.execute(update(Member).values(role_checked_at=utcnow() - timedelta(minutes=6)))
    service.role_check = await discord_says(None)  # Discord cannot tell now: the recorded role stands
    assert (await first.get("/queue")).status == 200 and asked == [("class-a", "teacher")]

    async def times_out(guild_id, user_id):
        raise TimeoutError("Discord did not answer")

    service.role_check = times_out  # nor when asking fails outright: the page is served, not a 500
    assert (await first.get("/queue")).status == 200
    service.role_check = await discord_says(True)  # still one: recorded again, not asked on the next page
    assert (await first.get("/queue")).status == 200 and len(asked) == 2
    assert (await first.get("/queue")).status == 200 and len(asked) == 2
    async with db.transaction() as s:
        await s.execute(update(Member).values(role_checked_at=utcnow() - timedelta(minutes=6)))
    service.role_check = await discord_says(False)  # demoted in Discord, no command run since
    assert (await first.get("/queue")).status == 401
    service.role_check = await discord_says(True)  # and the other session ended with it (never re-checked)
    assert (await second.get("/queue")).status == 401
    async with db.transaction() as s:
        assert (await s.execute(select(Member.role).where(Member.user_id == "teacher"))).scalar_one() == "student"


async def test_a_non_ascii_csrf_token_is_refused_not_an_error(site):
    service, make = site
    client = await make()
    await sign_in(client, await service.mint_link(TEACH))
    r = await client.post("/queue/pause", data={"csrf": "jeton-é-ü"}, allow_redirects=False)
    assert r.status == 403 and (await service.quotas(TEACH))["paused"] is False


def test_a_dashboard_over_plain_http_from_another_machine_refuses_to_start(tmp_path, monkeypatch, capsys, caplog):
    from cli import main
    from core.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYTUTOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("TINYTUTOR_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text('[storage]\ndata_dir = "d"\n[web]\npublic_url = "http://tutor.example.edu"\n')
    assert main(["web"]) == 1
    err = capsys.readouterr().err
    assert "plain http:// and not this machine" in err and "allow_insecure_http = true" in err
    for allowed in ('public_url = "https://tutor.example.edu"', 'public_url = "http://localhost:8080"',
                    'host = "127.0.0.2"'):
        (tmp_path / "config.toml").write_text(f'[web]\n{allowed}\n')
        assert load_settings().web.check_transport() is None, allowed
    (tmp_path / "config.toml").write_text('[web]\nhost = "0.0.0.0"\nallow_insecure_http = true\n')
    settings = load_settings()
    with caplog.at_level("WARNING", logger="tinytutor.web"):
        make_app(object(), settings)
    assert "http://0.0.0.0:8080 is plain http://" in caplog.text and "allowed by" in caplog.text


async def test_the_cancel_form_goes_back_only_to_a_page_of_this_site(site):
    service, make = site
    client = await make()
    await sign_in(client, await service.mint_link(TEACH))
    token = csrf_of(await (await client.get("/queue")).text())
    for back, location in [("https://evil.example/phish", "/queue"), ("//evil.example", "/queue"),
                           ("/\\evil.example", "/queue"), ("javascript:alert(1)", "/queue"), ("/queue?page=2", "/queue?page=2")]:
        job = (await service.submit(ALICE, GOOD, "a.csv", name="m")).job.id
        r = await client.post(f"/jobs/{job}/cancel", data={"csrf": token, "back": back}, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, location), back


async def test_the_students_page_shows_each_students_newest_failure(site, db):
    service, make = site
    client = await make()
    ids = [(await service.submit(ALICE, GOOD, "a.csv", name=f"m{i}")).job.id for i in range(3)]
    async with db.transaction() as s:
        for i, job_id in enumerate(ids):
            await s.execute(update(Job).where(Job.id == job_id).values(status="failed", error=f"failure number {i}"))
    await sign_in(client, await service.mint_link(TEACH))
    html = await (await client.get("/students")).text()
    assert "last failure: failure number 2" in html and "failure number 0" not in html


async def test_the_report_page_marks_why_and_lists_suspect_labels_and_the_learning_curve(site, db):
    from storage.models import Report

    service, make = site
    client = await make()
    sub = await service.submit(ALICE, GOOD, "a.csv", name="alice-model")
    text = "<b>pizza</b> and rain"  # markup in a student's text is shown, never obeyed
    metrics = {"macro_f1": 0.8, "accuracy": 0.8, "baseline_macro_f1": 0.7, "layers_kept": [1, 3], "layers_base": 4,
               "params": 1000, "ms_per_message": 0.5, "method": "full", "split": {"test": 10}, "report_text": "",
               "advice": ["Still rising: more examples will help."],
               "mistakes": [{"row": 7, "text": text, "label": "weather", "predicted": "food", "confidence": 0.9,
                             "explanation": {"reading": "mostly 'pizza' (against weather)", "top_spans": [[3, 8]]}}],
               "suspect_rows": [{"row": 12, "text": "snow all day", "label": "food", "expected": "weather",
                                 "label_probability": 0.05, "expected_probability": 0.9}],
               "learning_curve": [{"fraction": 0.5, "examples": 20, "macro_f1": 0.6},
                                  {"fraction": 1.0, "examples": 40, "macro_f1": 0.8}],
               "learning_curve_advice": "Still rising: more examples will help."}
    async with db.transaction() as s:
        job = await s.get(Job, sub.job.id)
        job.status = "succeeded"
        s.add(Report(job_id=job.id, metrics=metrics, report_text="", confusion_png="", curve_png=""))
    await sign_in(client, await service.mint_link(TEACH))
    html = await (await client.get(f"/jobs/{sub.job.id}")).text()
    assert "&lt;b&gt;<mark>pizza</mark>&lt;/b&gt; and rain" in html and "mostly &#39;pizza&#39; (against weather)" in html
    suspects = html.split('id="suspects"')[1].split("</table>")[0]
    assert "<td>12</td><td>snow all day</td><td>food</td><td>weather</td><td>90%</td>" in suspects
    curve = html.split('id="learning-curve"')[1].split("</table>")[0]
    assert "<td>50%</td><td>20</td><td>0.600</td>" in curve and "<td>100%</td><td>40</td><td>0.800</td>" in curve


async def test_an_assignments_boards_picks_reveal_and_grades_on_the_dashboard(site, db):
    import csv
    import io


    service, make = site
    view = await service.create_assignment(TEACH, "topics", (GOOD, "hidden.csv"), daily_cap=3)
    a1 = await scored(service, db, ALICE, "alice-strong", 0.90, 2_000_000, 1.0, view.id, private=0.4242)
    a2 = await scored(service, db, ALICE, "alice-steady", 0.70, 2_000_000, 1.0, view.id, private=0.9191)
    await scored(service, db, BOB, "bob-one", 0.80, 2_000_000, 1.0, view.id, private=0.8383)
    client = await make()
    await sign_in(client, await service.mint_link(TEACH))
    html = await (await client.get("/assignments/topics")).text()
    assert "Public board (what students see now)" in html and "Private board so far (instructors only" in html
    assert "0.919" in html and "3 a day" in html and 'id="shake-up"' in html
    token = csrf_of(html)
    # the instructor picks alice-strong for Alice: her counted best becomes 0.424, below Bob's 0.838
    assert (await client.post("/assignments/topics/pick", data={"csrf": token, "job": str(a1), "student": "alice"},
                              allow_redirects=False)).status == 303
    board = await service.leaderboard(TEACH, "topics")
    assert [(r.owner_id, r.model_name) for r in board.private] == [("bob", "bob-one"), ("alice", "alice-strong")]
    refused = await client.post("/assignments/topics/pick", data={"csrf": token, "job": str(a2), "student": "bob"})
    assert refused.status == 404 and "not one of bob&#39;s submissions" in await refused.text()
    assert (await client.post("/assignments/topics/reveal", data={"csrf": "forged"})).status == 403
    assert (await service.assignment(TEACH, "topics")).revealed_at is None

    bad = await client.get("/assignments/topics/grades.csv", params={"rule": "A=0.9"})
    assert bad.status == 400 and "add one for everything below" in await bad.text()
    got = await client.get("/assignments/topics/grades.csv", params={"rule": "A=0.8,F=0"})
    assert got.headers["Content-Disposition"] == 'attachment; filename="topics-grades.csv"'
    rows = list(csv.DictReader(io.StringIO(await got.text())))
    assert [(r["student"], r["model"], r["grade"]) for r in rows] == [("Bob", "bob-one", "A"), ("Alice", "alice-strong", "F")]

    assert (await client.post("/assignments/topics/reveal", data={"csrf": token}, allow_redirects=False)).status == 303
    html = await (await client.get("/assignments/topics")).text()
    assert "Final board: the private part" in html and "Close and reveal" not in html and ">pick<" not in html
    async with db.transaction() as s:
        assert (await s.execute(select(Outbox.kind))).scalars().all() == ["assignment_revealed"]

    other = await make()  # another class's instructor: nothing of this assignment
    await sign_in(other, await service.mint_link(OTHER_TEACH))
    assert (await other.get("/assignments/topics/grades.csv")).status == 404
    token = csrf_of(await (await other.get("/queue")).text())
    assert (await other.post("/assignments/topics/pick", data={"csrf": token, "job": str(a1)})).status == 404
