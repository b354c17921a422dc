"""The Discord surface under what a class meets in its first week: refusals that must stay private,
names and labels that try to ping or break out of a code block, a locked or deleted channel, an
outage in the middle of a result, a server that has never used the bot. All through the fake
Discord, which behaves like Discord for deferred follow-ups, mentions and 403/404/5xx answers."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import timedelta

import pytest
from fake_discord import (
    APP_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    GUILD_ID,
    INTEGER,
    STRING,
    option,
    snowflake,
)
from helpers import (
    DISCORD_ALICE,
    DISCORD_BOB,
    GOOD,
    TEACHER,
    caller_of,
    csv_bytes,
    synthetic_rows,
    wait_for,
)


def posted(env, needle: str) -> list:
    """Channel messages Discord accepted that contain ``needle``."""
    return [c for c in env.channel_posts() if c.status == 200 and needle in c.content]


def outside_code(content: str) -> str:
    return re.sub(r"```.*?```", "", content, flags=re.S)


async def test_a_result_named_to_ping_everyone_pings_only_its_student_and_survives_an_outage(env):
    nasty = "food```\n@here <@&555>"
    rows = [(t, nasty if y == "food" else y) for t, y in synthetic_rows(20)]
    # Discord fails the third channel message (progress, completion, then the report's code block) once
    env.fake.fail("POST", rf"^/channels/{CHANNEL_ID}/messages$", 503, after=2)
    opt, att = env.attachment_option("dataset", "topics.csv", csv_bytes(rows))
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "@everyone news <@&555>"),
                                   option("epochs", INTEGER, 2)], attachments=[att])
    report = await env.fake.wait(lambda: posted(env, "precision"), timeout=120, what="the report, after a retry")
    done = posted(env, "is ready")
    assert len(done) == 1 and len(report) == 1  # the part sent before the outage was not sent again
    assert [c.status for c in env.channel_posts()].count(503) == 1
    assert done[0].pings == {f"user:{DISCORD_ALICE.id}"}  # not @everyone, not the role in the model's name
    assert "@here" in report[0].content and "@here" not in outside_code(report[0].content)
    assert report[0].pings == frozenset()
    model = (await env.bot.service.jobs(caller_of(DISCORD_ALICE)))[0].model_id

    # /predict_file returns cells that start like formulas as text
    table = csv_bytes([("=HYPERLINK(\"http://evil\",\"x\") pizza", ""), ("+cmd|' /C calc'!A0 rain", ""),
                       ("@SUM(1+1) football", "")]).replace(b"text,label", b"text,note")
    opt, att = env.attachment_option("dataset", "chat.csv", table)
    calls = await env.run(DISCORD_ALICE, "predict_file", [opt, option("model", STRING, str(model))],
                          attachments=[att])
    out = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert not out.ephemeral and "3 rows classified" in out.content
    cells = list(csv.DictReader(io.StringIO(out.files["chat-predictions.csv"].decode())))
    assert [r["text"][:2] for r in cells] == ["'=", "'+", "'@"]
    assert all(r["predicted_label"] for r in cells)
    label_cells = {r["predicted_label"] for r in cells}
    assert all(not lab.startswith(("=", "+", "@", "-")) for lab in label_cells)

    # a file /predict_file refuses after its public "thinking": the channel sees no reason, the student does
    opt, att = env.attachment_option("dataset", "notes.csv", b"a,b,c\n1,2,3\n4,5,6\n")
    calls = await env.run(DISCORD_ALICE, "predict_file", [opt, option("model", STRING, str(model))], attachments=[att])
    assert calls[0].json["type"] == 5 and not calls[0].ephemeral
    public = [c for c in calls if c.path.startswith("/webhooks") and not c.ephemeral]
    private = [c for c in calls if c.path.startswith("/webhooks") and c.ephemeral]
    assert private and "No text column found" in private[-1].content
    assert public and all("text column" not in c.content for c in public)

    # another student's job: refused privately, at once
    calls = await env.run(DISCORD_BOB, "report", [option("job", INTEGER, 1)])
    assert len(calls) == 1 and calls[0].ephemeral and "belongs to another student" in calls[0].content

    # plots that are not on this host (another scheduler's, or removed): the result is still posted, once,
    # without them; before, the notice raised FileNotFoundError and was retried for ever
    import shutil

    from storage.models import Outbox

    shutil.rmtree(env.bot.service.store.root / "reports" / "job-1")
    async with env.bot.runtime.db.transaction() as s:
        s.add(Outbox(guild_id=str(GUILD_ID), kind="job_succeeded", job_id=1, channel_id=str(CHANNEL_ID),
                     payload={"job_id": 1, "owner_id": str(DISCORD_ALICE.id), "name": "again", "status": "succeeded"}))
    again = await env.fake.wait(lambda: [c for c in posted(env, "is ready") if "could not be attached" in c.content],
                                what="the result without its plots")
    await env.bot.runtime.periodic.rounds("outbox", 2)  # a round more would post it again if it had failed
    assert len(again) == 1 and again[0].files == {} and len(posted(env, "could not be attached")) == 1
    calls = await env.run(DISCORD_ALICE, "report", [option("job", INTEGER, 1)], messages=2)
    assert [c for c in calls if "could not be attached" in c.content] and not [c for c in calls if c.files]


async def test_the_first_command_in_a_server_never_seen_before_works(env):
    calls = await env.run(DISCORD_ALICE, "models", sub="list")
    assert calls[0].ephemeral and "No models yet" in calls[0].data["embeds"][0]["description"]


async def test_autocomplete_and_classify_message_as_a_servers_first_interactions(env):
    data = {"id": str(snowflake()), "name": "predict", "type": 1, "guild_id": str(GUILD_ID),
            "options": [{"name": "model", "type": STRING, "value": "", "focused": True},
                        {"name": "text", "type": STRING, "value": "x"}]}
    payload = env.fake.interaction(DISCORD_ALICE, data, type_=4)
    env.bot._connection.parse_interaction_create(payload)
    calls = await env.fake.wait(lambda: env.fake.calls_for(payload), what="autocomplete")
    assert calls[0].json == {"type": 8, "data": {"choices": []}}


async def test_classify_message_in_a_new_server_and_its_errors_are_answered_once(env):
    target = env.fake.message(CHANNEL_ID, {"content": "rain all day"}, {})
    calls = await env.run(DISCORD_BOB, "Classify message", type_=3, target=target)
    assert [c for c in calls if c.ephemeral and "no default model yet" in c.content]
    empty = env.fake.message(CHANNEL_ID, {"content": "   "}, {})
    payload = env.send(DISCORD_ALICE, "Classify message", type_=3, target=empty)
    await env.fake.wait(lambda: env.fake.calls_for(payload), what="the answer")
    await asyncio.sleep(1.0)  # time for a second handler to answer too, as it did
    calls = env.fake.calls_for(payload)
    assert len(calls) == 1 and calls[0].ephemeral and "no text to classify" in calls[0].content


async def test_instructor_commands_are_hidden_from_students_in_the_client(env):
    sync = next(c for c in env.fake.calls if c.method == "PUT")
    perms = {c["name"]: c.get("default_member_permissions") for c in sync.json}
    for name in ("queue", "quota", "queue_pause", "queue_resume", "class_report"):
        assert str(perms[name]) == str(1 << 5), name  # Manage Server
    assert perms["train"] is None and perms["predict"] is None


async def test_train_takes_column_options_and_refusals_name_no_command_line_flags(env):
    rows = "words,cat,notes\n" + "\n".join(f"{t},{y},x" for t, y in synthetic_rows(20))
    opt, att = env.attachment_option("dataset", "odd.csv", rows.encode())
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "odd")], attachments=[att])
    refusal = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert refusal.ephemeral and "No text column found" in refusal.content and "text_column" in refusal.content
    await env.bot.runtime.scheduler.stop(requeue=True)
    opt, att = env.attachment_option("dataset", "odd.csv", rows.encode())
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "odd"), option("text_column", STRING, "words"),
                                           option("label_column", STRING, "cat")], attachments=[att])
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert "Queued job **1**" in answer.content and "60 examples, 3 labels" in answer.content
    assert re.search(r"result expected <t:\d+:R>", answer.content)  # Discord's relative time, true without edits


async def test_a_paused_queue_is_said_in_words(env):
    await env.bot.runtime.scheduler.stop(requeue=True)
    await env.run(TEACHER, "queue_pause")
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "waits")], attachments=[att])
    answer = [c for c in calls if c.path.startswith("/webhooks")][0].content
    assert "The class queue is paused: it starts when an instructor resumes it" in answer
    assert "None" not in answer and "unknown" not in answer
    await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    calls = await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    assert "Job 1 has already been cancelled." in calls[0].content


async def test_one_locked_channel_does_not_stop_progress_for_the_class(env):
    await env.bot.runtime.scheduler.stop(requeue=True)
    for name in ("locked", "open"):
        opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
        await env.run(DISCORD_ALICE if name == "locked" else DISCORD_BOB, "train", [opt, option("name", STRING, name)],
                      attachments=[att])
    async def both_posted():  # each /train posts its progress message after answering
        jobs = {j[0].name: j for j in await env.bot.service.progress_messages()}
        return jobs if len(jobs) == 2 else None

    jobs = await wait_for(both_posted, timeout=10)
    locked, other = jobs["locked"][2], jobs["open"][2]
    env.fake.fail("PATCH", rf"/messages/{locked}$", 403, times=-1)
    await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    await env.run(DISCORD_BOB, "cancel", [option("job", INTEGER, 2)])
    edits = await env.fake.wait(lambda: [c for c in env.fake.calls if c.method == "PATCH" and c.status == 200
                                         and c.path.endswith(f"/messages/{other}") and "cancelled" in c.content],
                                what="the other job's progress message")
    assert edits
    await env.bot.runtime.periodic.rounds("progress", 3)
    refused = [c for c in env.fake.calls if c.method == "PATCH" and c.path.endswith(f"/messages/{locked}")
               and c.status == 403]
    assert len(refused) == 1  # given up at once, not retried every round (an edit before the lock may have passed)
    assert not [j for j in await env.bot.service.progress_messages() if j[0].name == "locked"]


async def test_a_result_its_channel_refuses_reaches_the_student_by_direct_message_once(env):
    await env.bot.runtime.scheduler.stop(requeue=True)
    env.bot.outbox.give_up_after = timedelta(0)
    env.fake.fail("POST", rf"^/channels/{CHANNEL_ID}/messages$", 403, times=-1)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "muted")], attachments=[att], messages=2)
    assert any("I cannot post in this channel" in c.content and c.ephemeral for c in calls)
    await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    dm = await env.fake.wait(lambda: [c for c in env.fake.calls if c.path == f"/channels/{DM_CHANNEL_ID}/messages"],
                             what="the direct message")
    assert "job **1**" in dm[0].content and "was cancelled" in dm[0].content and "could not post" in dm[0].content
    await env.bot.runtime.periodic.rounds("outbox", 3)  # given up, so not tried again
    refused = [c for c in env.channel_posts() if c.status == 403]
    assert len(refused) == 2  # the progress message and the notice, once each
    assert len([c for c in env.fake.calls if c.path == f"/channels/{DM_CHANNEL_ID}/messages"]) == 1
    calls = await env.run(DISCORD_ALICE, "jobs")
    assert "could not be posted" in calls[0].data["embeds"][0]["description"]


async def test_queue_pages_with_buttons_and_the_class_csv_is_safe_to_open(env):
    await env.bot.runtime.scheduler.stop(requeue=True)
    svc = env.bot.service
    await svc.set_quotas(caller_of(TEACHER), max_queued_per_student=30, max_jobs_per_day=30)
    for i in range(23):
        name = '=HYPERLINK("http://evil","x")' if i == 0 else f"job{i}"
        await svc.submit(caller_of(DISCORD_ALICE), GOOD, "t.csv", name=name)
    calls = await env.run(TEACHER, "queue")
    embed = calls[0].data["embeds"][0]
    assert embed["footer"]["text"] == "Page 1 of 3 · 23 jobs" and embed["description"].count("\n") == 9
    rows = calls[0].data["components"]
    assert [len(r["components"]) for r in rows] == [5, 5, 2]
    nxt = rows[2]["components"][1]
    assert nxt["label"] == "Next ▶" and not nxt.get("disabled")
    message = env.fake.message(CHANNEL_ID, calls[0].data, {})
    for user, ok in ((DISCORD_ALICE, False), (TEACHER, True)):
        payload = env.fake.interaction(user, {"custom_id": nxt["custom_id"], "component_type": 2}, type_=3,
                                       message=message)
        env.bot._connection.parse_interaction_create(payload)
        answer = (await env.fake.wait(lambda p=payload: env.fake.calls_for(p), what="the page button"))[0]
        if ok:
            assert answer.json["type"] == 7 and answer.data["embeds"][0]["footer"]["text"].startswith("Page 2 of 3")
        else:
            assert answer.ephemeral and "for instructors" in answer.content

    calls = await env.run(TEACHER, "class_report")
    body = [c for c in calls if c.path.startswith("/webhooks")][0].files["class-jobs.csv"].decode()
    names = [r["model"] for r in csv.DictReader(io.StringIO(body))]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in names and not any(n.startswith("=") for n in names)



async def test_a_rate_limited_notice_is_retried_and_posted_once(env):
    await env.bot.runtime.scheduler.stop(requeue=True)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "busy")], attachments=[att])
    await env.fake.wait(lambda: posted(env, "job **1**"), what="the progress message")
    env.fake.fail("POST", rf"^/channels/{CHANNEL_ID}/messages$", 429)
    await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    await env.fake.wait(lambda: posted(env, "was cancelled"), what="the notice after the 429")
    await env.bot.runtime.periodic.rounds("outbox", 2)  # rounds that must not send it again
    assert len(posted(env, "was cancelled")) == 1
    assert [c.status for c in env.channel_posts()].count(429) == 1


OTHER_GUILD = 424242424242


async def classes(env) -> list[str]:
    from sqlalchemy import select

    from storage.models import Classroom

    async with env.bot.runtime.db.transaction() as s:
        return list((await s.execute(select(Classroom.guild_id))).scalars())


async def test_a_server_the_bot_does_not_serve_gets_a_plain_answer_and_no_class(env):
    assert env.bot.settings.discord.servers == [str(GUILD_ID)]  # guild_id set, allowed_guilds empty
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    for name, options, kw in [("models", (), {"sub": "list"}), ("train", [opt], {"attachments": [att]}),
                              ("dashboard", (), {})]:
        calls = await env.run(TEACHER, name, options, guild_id=OTHER_GUILD, **kw)
        assert len(calls) == 1 and calls[0].ephemeral, (name, calls)
        assert "not set up for this server" in calls[0].content
    data = {"id": str(snowflake()), "name": "predict", "type": 1, "guild_id": str(OTHER_GUILD),
            "options": [{"name": "model", "type": STRING, "value": "", "focused": True}]}
    payload = env.fake.interaction(DISCORD_ALICE, data, type_=4, guild_id=OTHER_GUILD)
    env.bot._connection.parse_interaction_create(payload)
    await asyncio.sleep(0.5)
    assert env.fake.attachment_gets == []  # the upload was never even downloaded
    assert await classes(env) == [] and env.fake.left_guilds == []
    # the class's own server is served as before, and now has a class
    calls = await env.run(DISCORD_ALICE, "models", sub="list")
    assert "No models yet" in calls[0].data["embeds"][0]["description"]
    assert await classes(env) == [str(GUILD_ID)]


@pytest.mark.settings(discord={"leave_other_guilds": True})
async def test_a_server_the_bot_does_not_serve_is_left_when_configured(env):
    calls = await env.run(DISCORD_ALICE, "models", sub="list", guild_id=OTHER_GUILD)
    assert "not set up for this server" in calls[0].content
    await env.fake.wait(lambda: env.fake.left_guilds, what="leaving the server")
    assert env.fake.left_guilds == [str(OTHER_GUILD)] and await classes(env) == []


async def test_commands_sync_to_each_allowed_server_and_never_globally(env, monkeypatch):
    from bot.app import create_bot

    settings = env.bot.settings.changed(discord={"allowed_guilds": ["777", "888"]},
                                        storage={"data_dir": env.bot.settings.storage.data_dir + "-second"})
    bot = create_bot(settings)
    before = len(env.fake.calls)
    await bot.login("fake-token")
    try:
        syncs = [c.path for c in env.fake.calls[before:] if c.method == "PUT"]
    finally:
        await bot.close()
    assert syncs == [f"/applications/{APP_ID}/guilds/{g}/commands" for g in (GUILD_ID, 777, 888)]
    assert settings.discord.serves(888) and not settings.discord.serves(OTHER_GUILD)


async def test_rate_limits_answer_privately_with_when_to_try_again(env):
    await env.bot.service.set_quotas(caller_of(TEACHER), checks_per_hour=2, predictions_per_minute=3)
    for _ in range(2):
        opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
        calls = await env.run(DISCORD_ALICE, "check", [opt], attachments=[att])
        assert "can be trained on" in [c for c in calls if c.path.startswith("/webhooks")][0].content
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "check", [opt], attachments=[att])
    refusal = [c for c in calls if c.content and "checks_per_hour" in c.content]
    assert len(refusal) == 1 and refusal[0].ephemeral, [(c.path, c.content) for c in calls]
    assert re.search(r"used /check \(and /train with a file that was refused\) 2 times in the last hour "
                     r".*Try again in ~(59|60) min", refusal[0].content)
    # a /train whose file is refused counts the same (refused uploads were free before); a good one does not
    await env.bot.service.set_quotas(caller_of(TEACHER), checks_per_hour=1)
    for expected in ("cannot be trained on", "checks_per_hour = 1"):
        opt, att = env.attachment_option("dataset", "bad.csv", b"text,label\nhello,\n")
        calls = await env.run(DISCORD_BOB, "train", [opt, option("name", STRING, "x")], attachments=[att])
        assert [c for c in calls if c.ephemeral and expected in c.content], (expected, [c.content for c in calls])
    await env.bot.service.set_quotas(caller_of(TEACHER), checks_per_hour=2)
    # a classmate and the instructor are not held back by Alice's checks
    for user in (DISCORD_BOB, TEACHER):
        opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
        calls = await env.run(user, "check", [opt], attachments=[att])
        assert "can be trained on" in [c for c in calls if c.path.startswith("/webhooks")][0].content

    # Classify message (and /predict) count per minute (/predict_file per hour: test_bot.py)
    target = env.fake.message(CHANNEL_ID, {"content": "rain all day"}, {})
    for _ in range(3):
        calls = await env.run(DISCORD_BOB, "Classify message", type_=3, target=target)
        assert "no default model yet" in " ".join(c.content for c in calls)
    calls = await env.run(DISCORD_BOB, "Classify message", type_=3, target=target)
    refusal = [c for c in calls if c.content and "predictions_per_minute = 3" in c.content]
    assert len(refusal) == 1 and refusal[0].shown_ephemeral is not False and refusal[0].ephemeral
    assert re.search(r"Try again in ~\d+ s", refusal[0].content)



async def test_discord_is_asked_for_a_stale_role_and_a_role_change_ends_dashboard_sessions(env, monkeypatch):
    import discord
    from fake_discord import user_json
    from sqlalchemy import update

    from storage.models import Member, utcnow

    bot, fake, svc = env.bot, env.fake, env.bot.service
    monkeypatch.setenv("TINYTUTOR_WEB_SECRET", "a test secret that is long enough")
    bot._connection.parse_guild_create(fake.guild(manage_role=777))  # as the gateway sends it at start
    fake.members[(GUILD_ID, TEACHER.id)] = (777,)  # Manage Server through a role
    fake.members[(GUILD_ID, DISCORD_ALICE.id)] = (555,)  # the configured instructor role (a TA)

    async def still(user):
        return await bot.still_instructor(str(GUILD_ID), str(user.id))

    assert await still(TEACHER) is True and await still(DISCORD_ALICE) is True
    fake.members[(GUILD_ID, DISCORD_ALICE.id)] = ()
    assert await still(DISCORD_ALICE) is False
    del fake.members[(GUILD_ID, DISCORD_ALICE.id)]
    assert await still(DISCORD_ALICE) is False  # left the server
    fake.fail("GET", rf"/guilds/{GUILD_ID}/members/", 503)
    assert await still(TEACHER) is None  # Discord unavailable: cannot tell
    assert await bot.still_instructor("123", str(TEACHER.id)) is None  # a server not in the cache

    # a session whose recorded role is stale is re-checked through Discord when a page asks for it
    url = await svc.mint_link(caller_of(TEACHER))
    token = await svc.redeem_link(url.split("token=", 1)[1])
    fake.members[(GUILD_ID, TEACHER.id)] = ()  # Manage Server taken away; no command run since
    assert await svc.web_identity(token) is not None  # recorded just now
    async with bot.runtime.db.transaction() as s:
        await s.execute(update(Member).values(role_checked_at=utcnow() - timedelta(hours=1)))
    assert await svc.web_identity(token) is None

    # with the members intent, a role change reaches the bot as an event and ends the sessions at once
    fake.members[(GUILD_ID, TEACHER.id)] = (777,)
    token = await svc.redeem_link((await svc.mint_link(caller_of(TEACHER))).split("token=", 1)[1])
    guild = bot.get_guild(GUILD_ID)
    member = {"user": user_json(TEACHER.id, "teacher"), "roles": ["777"], "joined_at": "2026-11-01T00:00:00+00:00",
              "deaf": False, "mute": False, "flags": 0}
    guild._add_member(discord.Member(data=member, guild=guild, state=bot._connection))
    assert await svc.web_identity(token) is not None
    bot._connection.parse_guild_member_update(member | {"guild_id": str(GUILD_ID), "roles": []})
    async def signed_out():  # the event's handler runs as its own task
        return await svc.web_identity(token) is None

    await wait_for(signed_out, timeout=5, what="the role change to end the dashboard session")


async def test_a_full_disk_while_an_upload_is_staged_leaves_nothing_and_says_so(env, monkeypatch):
    import errno

    import storage.files

    real = storage.files.os.fdopen

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):  # os.fdopen is the process's: only the staging write fails
        return HalfWritten(real(fd, mode)) if mode == "wb" else real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(storage.files.os, "fdopen", fdopen)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "check", [opt], attachments=[att])
    answer = [c for c in calls if c.content and "disk is full" in c.content]
    assert len(answer) == 1 and answer[0].ephemeral and "nothing was stored" in answer[0].content
    assert list((env.bot.service.store.root / "tmp").iterdir()) == []


async def test_a_base_model_error_in_the_channel_names_no_server_path(env, tiny_base, tmp_path):
    assert env.bot.settings.base_models["tiny"] == str(tiny_base)  # the server's base model for the class
    sched = env.bot.runtime.scheduler
    await sched.stop(requeue=True)  # queued until the base is broken
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "t"), option("epochs", INTEGER, 1)],
                  attachments=[att])
    (tiny_base / "config.json").unlink()  # the operator broke the base model's directory meanwhile
    await sched.start(env.bot.runtime.periodic)
    failed = await env.fake.wait(lambda: posted(env, "failed:"), timeout=60, what="the failure notice")
    assert f"{tiny_base.name} has no config.json" in failed[0].content
    assert str(tiny_base.parent) not in failed[0].content and str(tmp_path) not in failed[0].content
    log = env.bot.service.store.log_path(1).read_text()
    assert str(tiny_base) in log  # the operator's log keeps the path
