"""Assignments through the real bot and the fake Discord: an instructor sets one in a server the bot
has never seen, a student submits with /train, the result says where it stands, /leaderboard and
/compare answer privately, and nothing of the hidden test set reaches Discord."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fake_discord import BOOLEAN, GUILD_ID, INTEGER, NUMBER, STRING, option, snowflake
from helpers import (
    DISCORD_ALICE,
    DISCORD_BOB,
    HIDDEN,
    MARK,
    TEACHER,
    TRAIN,
    csv_bytes,
    synthetic_rows,
)


def private_answer(calls) -> str:
    """What the user saw of a command answered privately: its callback or follow-ups, all ephemeral."""
    shown = [c for c in calls if c.method in ("POST", "PATCH") and (c.path.endswith("/callback") or
                                                                   c.path.startswith("/webhooks"))]
    texts = [c.content + json.dumps(c.data.get("embeds") or [], ensure_ascii=False) for c in shown
             if c.content or c.data.get("embeds")]
    assert texts and all(c.ephemeral for c in shown if c.content or c.data.get("embeds")), texts
    return "\n".join(texts)


async def test_an_assignment_in_discord_from_setting_it_to_the_board(env):
    test_opt, test_att = env.attachment_option("test_file", "hidden.csv", HIDDEN)
    args = [option("name", STRING, "topics"), test_opt, option("max_submissions", INTEGER, 1)]
    refused = await env.run(DISCORD_ALICE, "assignment", args, sub="create", attachments=[test_att])
    assert "Only instructors can set assignments" in private_answer(refused)
    assert env.fake.attachment_gets == []  # refused before downloading anything

    calls = await env.run(TEACHER, "assignment", args, sub="create", attachments=[test_att])
    assert env.fake.attachment_gets  # the instructor's file was read
    assert "Assignment **topics** is set: 24 hidden test examples" in private_answer(calls)
    announced = await env.fake.wait(lambda: [c for c in env.channel_posts() if "New assignment **topics**" in c.content],
                                    what="the announcement")
    assert "food, sports, weather" in announced[0].content and not announced[0].pings

    no_food = csv_bytes([r for r in synthetic_rows(20) if r[1] != "food"])
    opt, att = env.attachment_option("dataset", "bob.csv", no_food)
    calls = await env.run(DISCORD_BOB, "train", [option("name", STRING, "b"), opt, option("assignment", STRING, "topics")],
                          attachments=[att])
    assert "no examples of food" in private_answer(calls)

    opt, att = env.attachment_option("dataset", "alice.csv", TRAIN)
    calls = await env.run(DISCORD_ALICE, "train", [option("name", STRING, "alice-topics"), opt,
                                           option("assignment", STRING, "topics")], attachments=[att])
    assert "Submitted to assignment **topics**" in private_answer(calls)
    done = await env.fake.wait(lambda: [c for c in env.channel_posts() if c.files], timeout=120,
                               what="the completion message")
    fields = {f["name"]: f["value"] for f in done[0].json["embeds"][0]["fields"]}
    standing = fields["Assignment topics (public board)"]
    assert "#1 of 1" in standing and "your best so far" in standing and "weather" in standing
    assert "like:1" in fields["Reproduce"] and "seed 42" in fields["Reproduce"]

    calls = await env.run(DISCORD_ALICE, "train", [option("name", STRING, "again"), option("assignment", STRING, "topics")])
    assert "used all 1 submission(s)" in private_answer(calls)  # no file: the rule is checked all the same

    board = private_answer(await env.run(DISCORD_ALICE, "leaderboard", [option("assignment", STRING, "topics")]))
    assert "alice-topics" in board and "**you**" in board and "#1" in board
    refused = await env.run(DISCORD_ALICE, "leaderboard", [option("assignment", STRING, "topics"),
                                                   option("everything", BOOLEAN, True)])
    assert "Only instructors can see every submission" in private_answer(refused)
    calls = await env.run(TEACHER, "leaderboard", [option("assignment", STRING, "topics"),
                                                   option("everything", BOOLEAN, True)])
    assert f"<@{DISCORD_ALICE.id}>" in private_answer(calls) and not calls[0].pings
    exported = calls[0].files["topics-submissions.csv"].decode()
    assert exported.splitlines()[1].startswith(f"1,1,{DISCORD_ALICE.id},alice,alice-topics,yes,")

    compared = private_answer(await env.run(DISCORD_ALICE, "compare", [option("job_a", INTEGER, 1), option("job_b", INTEGER, 1)]))
    assert '"name": "Settings that differ", "value": "none"' in compared and "macro_f1: " in compared
    listed = private_answer(await env.run(DISCORD_ALICE, "assignment", sub="list"))
    assert "topics" in listed and "yours: 1 of 1 in all; none left" in listed
    closed = private_answer(await env.run(TEACHER, "assignment", [option("name", STRING, "topics")], sub="close"))
    assert "is closed" in closed

    # nothing of the hidden set left through Discord: no message, embed or file the bot sent
    sent = [c for c in env.fake.calls if c.method in ("POST", "PATCH") and not c.path.endswith("/commands")]
    assert not [c.path for c in sent if MARK in json.dumps(c.json, ensure_ascii=False)
                or any(MARK.encode() in b for b in c.files.values())]


# Private numbers written over the worker's (the tiny sets' public and private scores often tie at 1.000), so
# that any of them reaching a student before the reveal is one search away.
SECRET = {DISCORD_ALICE.id: 0.4242, DISCORD_BOB.id: 0.9191}


def _secrets_in(calls) -> list[str]:
    text = json.dumps([c.json for c in calls], ensure_ascii=False) + "".join(
        b.decode("utf-8", "replace") for c in calls for b in c.files.values())
    return [f"{v:.3f}" for v in SECRET.values() if f"{v:.3f}" in text]


@pytest.mark.settings(queue={"reveal_seconds": 0.2})
@pytest.mark.parametrize("bot_database", ["sqlite", "postgresql"])
async def test_an_assignment_with_two_boards_from_caps_to_the_reveal_in_discord(env, bot_database):
    from sqlalchemy import update

    from storage.models import Assignment, Score, utcnow

    test_opt, test_att = env.attachment_option("test_file", "hidden.csv", HIDDEN)
    train_opt, train_att = env.attachment_option("train_file", "train.csv", TRAIN)
    args = [option("name", STRING, "topics"), test_opt, train_opt, option("daily_cap", INTEGER, 1),
            option("public_share", NUMBER, 0.3), option("deadline", STRING, "2099-01-01")]
    made = private_answer(await env.run(TEACHER, "assignment", args, sub="create", attachments=[test_att, train_att]))
    assert "30% of them for the public board" in made and "revealed here at the deadline" in made

    for user, name in ((DISCORD_ALICE, "alice-1"), (DISCORD_BOB, "bob-1")):
        answer = private_answer(await env.run(user, "train", [option("name", STRING, name),
                                                              option("assignment", STRING, "topics")]))
        assert "Your submissions: 1 of 1 today; the next one tomorrow at 00:00 UTC" in answer
    over = private_answer(await env.run(DISCORD_ALICE, "train", [option("name", STRING, "alice-2"),
                                                                 option("assignment", STRING, "topics")]))
    assert "today's 1 submission(s)" in over and "Cancelled and failed jobs give the try back" in over
    await env.fake.wait(lambda: len([c for c in env.channel_posts() if c.files]) >= 2 or None, timeout=180,
                        what="both completion messages")
    async with env.bot.runtime.db.transaction() as s:
        for owner, value in SECRET.items():
            await s.execute(update(Score).where(Score.owner_id == str(owner)).values(
                private_macro_f1=value, private_accuracy=value))

    # before the reveal: the public board, picks, the list; nothing private in anything a student got
    board = private_answer(await env.run(DISCORD_ALICE, "leaderboard", [option("assignment", STRING, "topics")]))
    assert "public board" in board and "**you**" in board
    data = {"id": str(snowflake()), "name": "assignment", "type": 1, "guild_id": str(GUILD_ID),
            "options": [{"name": "pick", "type": 1, "options": [
                {"name": "name", "type": STRING, "value": "topics"},
                {"name": "job", "type": INTEGER, "value": "", "focused": True}]}]}
    payload = env.fake.interaction(DISCORD_ALICE, data, type_=4)
    env.bot._connection.parse_interaction_create(payload)
    offered = await env.fake.wait(lambda: env.fake.calls_for(payload), what="autocomplete")
    assert [c["value"] for c in offered[0].json["data"]["choices"]] == [1]  # her own scored submission only
    picked = private_answer(await env.run(DISCORD_ALICE, "assignment", [option("name", STRING, "topics"),
                                                                       option("job", INTEGER, 1)], sub="pick"))
    assert "Your final picks (1 of 2)" in picked and "job 1 `alice-1`" in picked
    refused = private_answer(await env.run(DISCORD_BOB, "assignment", [option("name", STRING, "topics"),
                                                                      option("job", INTEGER, 1)], sub="pick"))
    assert "not one of your submissions" in refused
    listed = private_answer(await env.run(DISCORD_BOB, "assignment", sub="list"))
    assert "yours: 1 of 1 today" in listed
    compared = private_answer(await env.run(DISCORD_ALICE, "compare", [option("job_a", INTEGER, 1),
                                                                       option("job_b", INTEGER, 1)]))
    assert "public board (topics)" in compared
    for sub_name in ("reveal", "grades"):
        no = private_answer(await env.run(DISCORD_BOB, "assignment", [option("name", STRING, "topics")], sub=sub_name))
        assert "Only instructors" in no
    students = [c for c in env.fake.calls if c.method in ("POST", "PATCH") and not c.path.endswith("/commands")]
    assert _secrets_in(students) == []
    teacher = private_answer(await env.run(TEACHER, "leaderboard", [option("assignment", STRING, "topics")]))
    assert "Shake-up, public → private (instructors only, before the reveal)" in teacher

    # the deadline passes: the periodic task reveals it once; each student hears their place privately,
    # except one whose direct messages are closed (403), who is skipped without holding up the rest
    env.fake.fail("POST", r"^/users/@me/channels$", 403, times=1)
    async with env.bot.runtime.db.transaction() as s:
        past = utcnow()
        await s.execute(update(Assignment).values(deadline=past, reveal_due_at=past))
    posts = await env.fake.wait(lambda: [c for c in env.channel_posts() if "final board of **topics**" in c.content],
                                what="the reveal")
    await env.bot.runtime.periodic.rounds("outbox", 2)
    await env.bot.runtime.periodic.rounds("reveal", 2)
    assert len([c for c in env.channel_posts() if "final board of **topics**" in c.content]) == 1
    assert not posts[0].pings and "0.919" in posts[0].content and posts[0].content.index("0.919") < posts[0].content.index("0.424")
    dms = {u.id: env.fake.dms(u.id) for u in (DISCORD_ALICE, DISCORD_BOB)}
    assert sorted(len(d) for d in dms.values()) == [0, 1]  # the first direct message was refused, the other sent
    [(user_id, [dm])] = [(u, d) for u, d in dms.items() if d]
    place = "#1 of 2" if user_id == DISCORD_BOB.id else "#2 of 2"
    assert place in dm.content and f"{SECRET[user_id]:.3f}" in dm.content and not dm.pings

    final = private_answer(await env.run(DISCORD_ALICE, "leaderboard", [option("assignment", STRING, "topics")]))
    assert "final board (private part)" in final and "0.424" in final
    late = private_answer(await env.run(DISCORD_ALICE, "assignment", [option("name", STRING, "topics"),
                                                                     option("job", INTEGER, 1)], sub="pick"))
    assert "the picks are final" in late
    calls = await env.run(TEACHER, "assignment", [option("name", STRING, "topics"), option("rule", STRING, "A=0.9,F=0")],
                          sub="grades")
    grades = list(csv.reader(io.StringIO(calls[0].files["topics-grades.csv"].decode())))
    assert [(g[:6], g[7:]) for g in grades[1:]] == [
        ([str(DISCORD_BOB.id), "bob", "2", "bob-1", "best public", "0.9191"], ["1", "2", "A", "A=0.9,F=0"]),
        ([str(DISCORD_ALICE.id), "alice", "1", "alice-1", "pick", "0.4242"], ["2", "2", "F", "A=0.9,F=0"])]
