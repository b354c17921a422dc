"""/experiment through the real discord.py path against the fake Discord: a 4-job layer sweep on the
5-topic example, queued in a server never seen before, posted once (chart and table) when its last job
ends; what it shows to whom."""

from __future__ import annotations

import re

from fake_discord import INTEGER, STRING, option
from helpers import DISCORD_ALICE, DISCORD_BOB

from trainer.examples import write_chatterbot_csv


async def test_a_layer_sweep_is_queued_privately_and_posted_once_with_its_chart_and_table(env, tmp_path):
    data = write_chatterbot_csv(tmp_path / "topics.csv").read_bytes()  # 5 topics of real chat lines
    opt, att = env.attachment_option("dataset", "topics.csv", data)
    calls = await env.run(DISCORD_ALICE, "experiment", [opt, option("name", STRING, "sizes"),
                                                        option("setting", STRING, "layers"),
                                                        option("values", STRING, "1, 2, 3, 4"),
                                                        option("epochs", INTEGER, 1)],
                          sub="run", attachments=[att])  # the class's first command
    assert calls[0].json["type"] == 5 and calls[0].ephemeral
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert answer.ephemeral and "Queued experiment **1** `sizes`: 4 jobs" in answer.content
    assert "**1** (layers=1), **2** (layers=2), **3** (layers=3), **4** (layers=4)" in answer.content

    def posted():
        return [c for c in env.channel_posts() if "experiment-1.png" in c.files]

    await env.fake.wait(posted, timeout=300, what="the experiment's chart and table")
    await env.bot.runtime.periodic.rounds("outbox", 2)  # rounds that must not post it again
    (post,) = posted()
    assert env.channel_posts() == [post]  # nothing else in the channel: no per-job reports or progress messages
    assert post.files["experiment-1.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert post.pings == {f"user:{DISCORD_ALICE.id}"} and len(post.content) <= 2000
    assert "your experiment **sizes** (layers = 1, 2, 3, 4) has finished: 4 of 4 runs succeeded" in post.content
    table = post.content.split("```")[1].strip().splitlines()
    assert table[0].split() == ["layers", "macro-F1", "ms/msg", "params", "job"]
    for line, (layers, job) in zip(table[1:5], ((1, 1), (2, 2), (3, 3), (4, 4)), strict=True):
        assert re.fullmatch(rf" *{layers} +[01]\.\d{{3}} +\d+\.\d\d +\d+k +{job}( +◆)?", line), line
    view = await env.bot.service.experiment_report(1)
    assert [line.endswith("  ◆") for line in table[1:5]] == [r.front for r in view.runs]  # the front, as computed
    assert table[5].startswith("same test split: TF-IDF 0.") and "frozen base + probe 0." in table[5]
    assert view.reading() in post.content

    # a classmate cannot see it, privately; its owner posts it again for the class
    calls = await env.run(DISCORD_BOB, "experiment", [option("experiment", INTEGER, 1)], sub="show")
    assert len(calls) == 1 and calls[0].ephemeral and "another student's" in calls[0].content
    calls = await env.run(DISCORD_ALICE, "experiment", [option("experiment", INTEGER, 1)], sub="show")
    assert calls[0].json["type"] == 5 and not calls[0].ephemeral
    again = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert not again.ephemeral and "experiment-1.png" in again.files and not again.pings



async def test_an_experiment_its_channel_refuses_reaches_the_student_by_direct_message_once(env):
    """Both runs cancelled while queued: the experiment ends with no chart, its one notice is refused by the
    channel, and the student is told directly, once."""
    from datetime import timedelta

    from fake_discord import CHANNEL_ID, DM_CHANNEL_ID
    from helpers import GOOD

    await env.bot.runtime.scheduler.stop(requeue=True)
    env.bot.outbox.give_up_after = timedelta(0)
    env.fake.fail("POST", rf"^/channels/{CHANNEL_ID}/messages$", 403, times=-1)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "experiment", [opt, option("name", STRING, "muted"), option("setting", STRING, "layers"),
                                                option("values", STRING, "1,2")], sub="run", attachments=[att])
    for job in (1, 2):
        await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, job)])
    dm = await env.fake.wait(lambda: [c for c in env.fake.calls if c.path == f"/channels/{DM_CHANNEL_ID}/messages"],
                             what="the direct message")
    assert "experiment **1** `muted` has finished" in dm[0].content and "could not post" in dm[0].content
    await env.bot.runtime.periodic.rounds("outbox", 3)  # given up, so not tried again
    assert len([c for c in env.channel_posts() if c.status == 403]) == 1  # the one notice, tried once
    assert len([c for c in env.fake.calls if c.path == f"/channels/{DM_CHANNEL_ID}/messages"]) == 1
