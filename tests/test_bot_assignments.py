"""Assignments through the real bot and the fake Discord: an instructor sets one in a server the bot
has never seen, a student submits with /train, the result says where it stands, /leaderboard and
/compare answer privately, and nothing of the hidden test set reaches Discord."""

from __future__ import annotations

import json

from fake_discord import BOOLEAN, INTEGER, STRING, option
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
    standing = fields["Assignment topics (hidden test set)"]
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
    assert "topics" in listed and "0 of 1 submissions left" in listed
    closed = private_answer(await env.run(TEACHER, "assignment", [option("name", STRING, "topics")], sub="close"))
    assert "is closed" in closed

    # nothing of the hidden set left through Discord: no message, embed or file the bot sent
    sent = [c for c in env.fake.calls if c.method in ("POST", "PATCH") and not c.path.endswith("/commands")]
    assert not [c.path for c in sent if MARK in json.dumps(c.json, ensure_ascii=False)
                or any(MARK.encode() in b for b in c.files.values())]
