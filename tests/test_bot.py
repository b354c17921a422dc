"""The Discord bot through discord.py's real path, against the fake Discord in fake_discord.py:
login runs setup_hook and command sync; each command arrives as an INTERACTION_CREATE payload."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import discord
from fake_discord import (
    BOOLEAN,
    CHANNEL_ID,
    GUILD_ID,
    INTEGER,
    STRING,
    FakeDiscord,
    option,
    snowflake,
)
from helpers import (
    DISCORD_ALICE,
    DISCORD_BOB,
    GOOD,
    TA,
    TEACHER,
    caller_of,
    csv_bytes,
    synthetic_rows,
    wait_for,
)

from bot.app import create_bot

COMMANDS = {"train", "check", "predict", "predict_file", "models", "jobs", "cancel", "report", "queue", "quota",
            "queue_pause", "queue_resume", "class_report", "Classify message", "assignment", "leaderboard", "compare",
            "dashboard", "suspects", "experiment"}


async def test_login_runs_setup_and_syncs_every_command_to_the_configured_guild(env):
    sync = [c for c in env.fake.calls if c.method == "PUT"]
    assert [c.path for c in sync] == [f"/applications/{env.bot.application_id}/guilds/{GUILD_ID}/commands"]
    names = {c["name"] for c in sync[0].json}
    assert names == COMMANDS
    train = next(c for c in sync[0].json if c["name"] == "train")
    assert all(o.get("description") for o in train["options"])  # every option is described
    # discord.py cuts descriptions over Discord's 100 characters with "…": none may need cutting, at any depth
    def cut(items, where=""):
        for o in items or []:
            here = f"{where}/{o['name']}"
            yield from ([here] if o.get("description", "").endswith("…") else [])
            yield from cut(o.get("options"), here)

    assert list(cut(sync[0].json)) == []
    assert env.bot.runtime.scheduler.started  # the scheduler started with the bot, on its periodic tasks
    assert {"dispatch", "reap", "outbox", "progress"} <= set(env.bot.runtime.periodic.names)


async def test_train_with_method_probe_reports_the_three_rows(env):
    """The probe method from /train: seconds of work, and the result shows TF-IDF, the frozen base and the model."""
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "quick"), option("method", STRING, "probe")],
                  attachments=[att])
    done = await env.fake.wait(lambda: [c for c in env.channel_posts() if c.files], timeout=120,
                               what="the completion message")
    embed = done[0].json["embeds"][0]
    lines = embed["description"].splitlines()
    assert re.fullmatch(r"TF-IDF baseline: macro-F1 [01]\.\d{3}", lines[1])
    assert re.fullmatch(r"Frozen base \(4 layers\) \+ linear probe: [01]\.\d{3}", lines[2])
    assert lines[3].startswith("**This model** (2 layers, linear probe on the frozen layers)")
    assert {"TF-IDF baseline", "Frozen base + probe"} <= {f["name"] for f in embed["fields"]}
    assert embed["footer"]["text"].startswith("a linear probe of")


async def test_train_progress_report_and_predict_end_to_end(env):
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "topics"), option("epochs", INTEGER, 3)],
                          attachments=[att])
    cb = calls[0]
    assert cb.json["type"] == 5 and cb.ephemeral  # deferred at once, privately
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert answer.ephemeral and "Queued job **1**" in answer.content and "Position 1" in answer.content

    # a public progress message, edited in place, then the completion message with both plots
    posted = await env.fake.wait(lambda: [c for c in env.channel_posts() if "job **1**" in c.content],
                                 what="the progress message")
    assert posted[0].content.startswith("⏳")
    progress_id = posted[0].message_id  # (a fast job may have edited it to its end already)

    def completion():
        return [c for c in env.channel_posts() if c.files]

    done = await env.fake.wait(completion, timeout=120, what="the completion message")
    msg = done[0]
    assert set(msg.files) == {"confusion_matrix.png", "training_curve.png", "learning_curve.png"}
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in msg.files.values())
    assert f"<@{DISCORD_ALICE.id}>" in msg.content and "is ready" in msg.content
    embed = msg.json["embeds"][0]
    assert embed["title"] == "✅ topics v1 — job 1"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert {"Accuracy", "Macro-F1", "TF-IDF baseline", "Layers", "Parameters", "Speed"} <= set(fields)
    assert fields["Layers"].startswith("2 of 4") and "Advice" in fields
    assert embed["image"]["url"] == "attachment://confusion_matrix.png"
    report = await env.fake.wait(lambda: [c for c in env.channel_posts() if "precision" in c.content],
                                 what="the classification report")
    assert report[0].content.startswith("```") and len(report[0].content) <= 2000

    def edits():
        return [c for c in env.fake.calls if c.method == "PATCH" and c.path.endswith(f"/messages/{progress_id}")]

    try:
        await env.fake.wait(lambda: any("finished" in c.content for c in edits()), what="the final progress edit")
    except AssertionError:
        raise AssertionError([c.json for c in edits()]) from None
    assert len(edits()) >= 2 and all("job **1**" in c.content for c in edits())
    assert posted

    # /predict with autocomplete's value, and the "Classify message" context menu with the default model
    calls = await env.run(DISCORD_ALICE, "predict", [option("model", STRING, "1"), option("text", STRING, "pizza and soup")])
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert calls[0].json["type"] == 5 and not answer.ephemeral  # the class sees predictions
    out = answer.content
    _, (pred,) = await env.bot.service.predict(caller_of(DISCORD_ALICE), 1, ["pizza and soup"])
    assert "topics v1" in out and f"**{pred.label}** ({pred.score:.0%})" in out and "█" in out  # the model's answer
    target = env.fake.message(CHANNEL_ID, {"content": "rain and snow and wind today"}, {})
    target["author"] = {"id": str(DISCORD_BOB.id), "username": "bob", "discriminator": "0", "avatar": None}
    calls = await env.run(DISCORD_ALICE, "Classify message", type_=3, target=target)
    menu = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert menu.ephemeral and "topics v1" in menu.content

    # /report posts it again; Bob cannot predict with Alice's private model
    calls = await env.run(DISCORD_ALICE, "report", [option("job", INTEGER, 1)], messages=2)
    assert any(c.files for c in calls)
    calls = await env.run(DISCORD_BOB, "predict", [option("model", STRING, "1"), option("text", STRING, "pizza")])
    assert len(calls) == 1 and calls[0].ephemeral and "There is no model 1 you can use" in calls[0].content


async def test_autocomplete_offers_own_and_shared_models_only(env):
    from storage.models import Model

    await env.bot.service.ensure_class(str(GUILD_ID))
    async with env.bot.runtime.db.transaction() as s:
        for owner, name, vis in ((DISCORD_ALICE.id, "mine", "private"), (DISCORD_BOB.id, "bobs", "private"), (DISCORD_BOB.id, "shared", "class")):
            s.add(Model(guild_id=str(GUILD_ID), owner_id=str(owner), name=name, version=1, base_model="tiny",
                        layers_kept=[0], layers_base=4, params=1, params_base=2, labels=["a", "b"],
                        metrics={"macro_f1": 0.5}, visibility=vis, path=f"models/{name}"))
    data = {"id": str(snowflake()), "name": "predict", "type": 1, "guild_id": str(GUILD_ID),
            "options": [{"name": "model", "type": STRING, "value": "", "focused": True},
                        {"name": "text", "type": STRING, "value": "x"}]}
    payload = env.fake.interaction(DISCORD_ALICE, data, type_=4)
    env.bot._connection.parse_interaction_create(payload)
    calls = await env.fake.wait(lambda: env.fake.calls_for(payload), what="autocomplete")
    assert calls[0].json["type"] == 8
    names = [c["name"] for c in calls[0].json["data"]["choices"]]
    assert any(n.startswith("mine v1") for n in names) and any(n.startswith("shared v1") for n in names)
    assert not any(n.startswith("bobs") for n in names)


async def test_a_bad_upload_gets_row_errors_privately_and_stores_nothing(env):
    rows = synthetic_rows(20)
    rows[3] = ("", "food")
    opt, att = env.attachment_option("dataset", "bad.csv", csv_bytes(rows))
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "bad")], attachments=[att])
    answer = [c for c in calls if c.path.startswith("/webhooks")]
    assert answer and all(c.ephemeral for c in answer)
    assert "row 5" in answer[0].content and "nothing was stored" in answer[0].content
    assert await env.bot.service.jobs(caller_of(DISCORD_ALICE)) == []
    assert not env.channel_posts()


async def test_an_upload_over_the_limit_is_refused_before_download(env):
    opt, att = env.attachment_option("dataset", "huge.csv", GOOD + b"x" * 300_000)
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "huge")], attachments=[att])
    assert calls[0].json["type"] == 4 and calls[0].ephemeral  # answered at once, no defer needed
    assert "uploads are limited to 200,000 bytes" in calls[0].content
    assert env.fake.attachment_gets == []


async def test_check_predict_file_models_jobs_cancel(env):
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "check", [opt], attachments=[att])
    out = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert out.ephemeral and "can be trained on: 60 examples, 3 labels" in out.content

    await env.bot.runtime.scheduler.stop(requeue=True)  # keep jobs queued for this test
    for name in ("one", "two"):
        opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
        await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, name)], attachments=[att])
    calls = await env.run(DISCORD_ALICE, "jobs")
    embed = calls[0].data["embeds"][0]
    assert "queued #1" in embed["description"] and "queued #2" in embed["description"]
    calls = await env.run(DISCORD_BOB, "cancel", [option("job", INTEGER, 1)])
    assert calls[0].ephemeral and "belongs to another student" in calls[0].content
    calls = await env.run(DISCORD_ALICE, "cancel", [option("job", INTEGER, 1)])
    assert "cancelled" in calls[0].content
    calls = await env.run(DISCORD_ALICE, "models", sub="list")
    assert "No models yet" in calls[0].data["embeds"][0]["description"]


async def test_an_explained_prediction_is_private_and_marks_the_words_that_drove_it(env, tmp_path):
    model_id = await _trained_model(env, tmp_path)  # the class's first command: a server never seen before
    text = "i think the pizza and bread were *great*"
    calls = await env.run(DISCORD_ALICE, "predict", [option("model", STRING, str(model_id)),
                                                     option("text", STRING, text), option("explain", BOOLEAN, True)])
    assert calls[0].json["type"] == 5 and calls[0].ephemeral  # private from the first answer
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert answer.ephemeral
    _, (pred,) = await env.bot.service.predict(caller_of(DISCORD_ALICE), model_id, [text], explain=True)
    why, escape = pred.explanation, discord.utils.escape_markdown
    assert f"**{pred.label}**" in answer.content and f"*why: {escape(why.reading)}*" in answer.content
    assert why.top()
    for part in why.top():  # the words that drove it are bold in the quoted message, its own markdown escaped
        assert f"**{escape(part.text)}**" in answer.content
    assert "*great*" not in answer.content.replace("\\*great\\*", "")  # the message's stars are shown, not obeyed
    # the context menu explains too, privately
    target = env.fake.message(CHANNEL_ID, {"content": text}, {})
    target["author"] = {"id": str(DISCORD_BOB.id), "username": "bob", "discriminator": "0", "avatar": None}
    calls = await env.run(DISCORD_ALICE, "Classify message", type_=3, target=target)
    menu = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert menu.ephemeral and f"*why: {escape(why.reading)}*" in menu.content


async def test_suspect_labels_are_the_student_s_alone_with_a_file_to_fix(env):
    rows = synthetic_rows(40)
    for i in (2, 9, 30, 77):
        rows[i] = (rows[i][0], "sports" if rows[i][1] != "sports" else "food")
    opt, att = env.attachment_option("dataset", "topics.csv", csv_bytes(rows))
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "topics"), option("epochs", INTEGER, 1)],
                  attachments=[att])
    await env.fake.wait(lambda: [c for c in env.channel_posts() if c.files], timeout=120, what="the result")
    rep, suspects, _ = await env.bot.service.suspect_rows(caller_of(DISCORD_ALICE), 1)
    assert suspects and all(rows[s["row"] - 2] == (s["text"], s["label"]) for s in suspects)
    calls = await env.run(DISCORD_ALICE, "suspects", [option("job", INTEGER, 1)])
    assert calls[0].json["type"] == 5 and calls[0].ephemeral
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert answer.ephemeral and f"row {suspects[0]['row']}: labelled **{suspects[0]['label']}**" in answer.content
    (name, body), = answer.files.items()
    written = list(csv.DictReader(io.StringIO(body.decode())))
    assert name == "job-1-suspects.csv" and [int(w["row"]) for w in written] == [s["row"] for s in suspects]
    assert list(written[0]) == ["row", "text", "label", "expected_label", "label_probability", "expected_probability"]
    calls = await env.run(DISCORD_BOB, "suspects", [option("job", INTEGER, 1)])  # a classmate's job: nothing
    assert all(c.ephemeral for c in calls) and not any(c.files for c in calls)
    assert not any(s["text"] in c.content for c in calls for s in suspects)
    # what the class saw in the channel names no suspect row
    public = " ".join(c.content + json.dumps(c.json or {}) for c in env.channel_posts())
    assert not any(f"row {s['row']}" in public for s in suspects)


async def test_models_commands_and_predict_file_on_a_trained_model(env, tiny_base, tmp_path):
    model_id = await _trained_model(env, tmp_path)
    calls = await env.run(DISCORD_ALICE, "models", sub="list")
    assert "⭐" in calls[0].data["embeds"][0]["description"]
    calls = await env.run(DISCORD_ALICE, "models", [option("model", STRING, str(model_id)), option("name", STRING, "renamed")],
                          sub="rename")
    assert "renamed v1" in calls[0].content
    calls = await env.run(DISCORD_BOB, "models", [option("model", STRING, str(model_id))], sub="share")
    assert "belongs to another student" in calls[0].content or "There is no model" in calls[0].content
    calls = await env.run(DISCORD_ALICE, "models", [option("model", STRING, str(model_id)), option("shared", BOOLEAN, True)],
                          sub="share")
    assert "shared with the class" in calls[0].content
    calls = await env.run(DISCORD_BOB, "models", [option("model", STRING, str(model_id))], sub="default")
    assert "default model" in calls[0].content

    table = b"text\npizza and cheese\nrain and snow\n\n"
    opt, att = env.attachment_option("dataset", "chat.csv", table)
    calls = await env.run(DISCORD_BOB, "predict_file", [opt], attachments=[att])
    out = [c for c in calls if c.path.startswith("/webhooks")][0]
    (name, body), = out.files.items()
    assert name == "chat-predictions.csv"
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["text"] for r in rows] == ["pizza and cheese", "rain and snow"]
    _, preds = await env.bot.service.predict(caller_of(DISCORD_BOB), model_id, ["pizza and cheese", "rain and snow"])
    assert [r["predicted_label"] for r in rows] == [p.label for p in preds]  # the shared model's, row by row
    # Bob's next file this hour is over the class's rate limit: refused privately, saying when to try again
    await env.bot.service.set_quotas(caller_of(TEACHER), predict_files_per_hour=1)
    opt, att = env.attachment_option("dataset", "chat.csv", table)
    calls = await env.run(DISCORD_BOB, "predict_file", [opt], attachments=[att])
    refusal = [c for c in calls if "predict_files_per_hour = 1" in c.content]
    assert len(refusal) == 1 and refusal[0].ephemeral and "Try again in ~60 min" in refusal[0].content
    assert calls[0].json["type"] == 4 and len(calls) == 1  # refused at once: no public "thinking" first
    assert not [c for c in calls if c.files]

    calls = await env.run(DISCORD_ALICE, "models", [option("model", STRING, str(model_id))], sub="delete", messages=1)
    assert "Deleted" in [c for c in calls if c.path.startswith("/webhooks")][0].content


async def test_train_method_distill_with_a_teacher_model_reports_both(env, tmp_path):
    teacher = await _trained_model(env, tmp_path)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    calls = await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "student"), option("method", STRING, "distill"),
                                           option("teacher", STRING, str(teacher)), option("layers", INTEGER, 1),
                                           option("epochs", INTEGER, 2)], attachments=[att])
    answer = [c for c in calls if c.path.startswith("/webhooks")][0]
    assert answer.ephemeral and "Queued job **2**" in answer.content

    def completion():
        return [c for c in env.channel_posts() if c.files and "student" in c.json["embeds"][0]["title"]]

    msg = (await env.fake.wait(completion, timeout=120, what="the distilled model's completion message"))[0]
    fields = {f["name"]: f["value"] for f in msg.json["embeds"][0]["fields"]}
    assert "2 layers" in fields["Teacher (distilled from)"] and "the student keeps" in fields["Teacher (distilled from)"]
    assert fields["Layers"].startswith("1 of 2") and "ONNX" in fields["Speed"]
    assert msg.json["embeds"][0]["footer"]["text"].startswith("distillation of")


async def test_instructor_commands_are_refused_to_students_and_work_for_instructors(env):
    for name in ("queue", "quota", "queue_pause", "queue_resume", "class_report"):
        calls = await env.run(DISCORD_ALICE, name)
        assert calls[0].ephemeral and "for instructors" in calls[0].content, name

    await env.bot.runtime.scheduler.stop(requeue=True)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "a")], attachments=[att])
    calls = await env.run(TEACHER, "queue")
    msg = calls[0]
    assert msg.ephemeral and f"<@{DISCORD_ALICE.id}>" in msg.data["embeds"][0]["description"]
    button = msg.data["components"][0]["components"][0]
    assert button["custom_id"] == "tt:cancel:1"

    # the instructor presses the cancel button (a component interaction on that message)
    message = env.fake.message(CHANNEL_ID, msg.data, {})
    payload = env.fake.interaction(TA, {"custom_id": "tt:cancel:1", "component_type": 2}, type_=3, message=message)
    env.bot._connection.parse_interaction_create(payload)
    calls = await env.fake.wait(lambda: env.fake.calls_for(payload), what="the cancel button")
    assert "Job **1**" in calls[0].content and "cancelled" in calls[0].content

    calls = await env.run(TA, "quota", [option("max_epochs", INTEGER, 7)])
    assert "`max_epochs` = **7**" in calls[0].data["embeds"][0]["description"]
    calls = await env.run(TEACHER, "queue_pause")
    assert "paused" in calls[0].content
    assert (await env.bot.service.quotas(caller_of(TEACHER)))["paused"] is True
    await env.run(TEACHER, "queue_resume")
    calls = await env.run(TEACHER, "class_report")
    out = [c for c in calls if c.path.startswith("/webhooks")][0]
    body = out.files["class-jobs.csv"].decode()
    assert "job,student,model,status" in body and f"{DISCORD_ALICE.id},a,cancelled" in body


async def test_unexpected_errors_are_logged_with_an_id_the_student_can_quote(env, monkeypatch, caplog):
    async def broken(*a, **k):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(env.bot.runtime.service, "jobs", broken)
    calls = await env.run(DISCORD_ALICE, "jobs")
    assert calls[0].ephemeral and "error id `" in calls[0].content and "exploded" not in calls[0].content
    error_id = calls[0].content.split("`")[1]
    assert any(error_id in r.getMessage() for r in caplog.records)


async def _trained_model(env, tmp_path) -> int:
    """Alice's model, trained for real through the queue (tiny base)."""
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "topics")], attachments=[att])

    async def done():
        views = await env.bot.service.jobs(caller_of(DISCORD_ALICE))
        return views[0] if views and views[0].status in ("succeeded", "failed") else None

    view = await wait_for(done, timeout=120)
    assert view.status == "succeeded", view
    return view.model_id


async def test_smoke_through_the_gateway(tmp_path, settings_for, monkeypatch):
    """bot.start(): login, command sync, gateway HELLO/IDENTIFY/READY, then a command over the websocket."""
    import asyncio

    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base}/api/v10")
    import yarl
    from discord.gateway import DiscordWebSocket

    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.base.replace("http://", "ws://") + "/gateway"))
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    bot = create_bot(settings)
    runner = asyncio.create_task(bot.start("fake-token"))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        assert fake.identify["token"] == "fake-token" and fake.identify["intents"] == discord.Intents(guilds=True).value
        assert any(c.method == "PUT" and c.path.endswith("/commands") for c in fake.calls)  # global sync
        payload = fake.interaction(DISCORD_ALICE, {"id": str(snowflake()), "name": "jobs", "type": 1,
                                           "guild_id": str(GUILD_ID), "options": []})
        await fake.dispatch("INTERACTION_CREATE", payload)
        calls = await fake.wait(lambda: fake.calls_for(payload), what="/jobs over the gateway")
        assert calls[0].ephemeral and "No jobs yet" in json.dumps(calls[0].data["embeds"])
    finally:
        await bot.close()
        await asyncio.wait_for(runner, 30)
        await fake.stop()


def test_tinytutor_bot_refuses_to_start_without_a_token(tmp_path):
    env_vars = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    exe = Path(sys.executable).with_name("tinytutor")
    run = subprocess.run([str(exe), "bot"], cwd=tmp_path, env=env_vars, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "DISCORD_TOKEN is not set" in run.stderr and "export DISCORD_TOKEN" in run.stderr


async def test_a_failed_job_is_announced_with_the_reason_and_what_to_do(env):
    from storage import queue as q

    await env.bot.runtime.scheduler.stop(requeue=True)
    opt, att = env.attachment_option("dataset", "topics.csv", GOOD)
    await env.run(DISCORD_ALICE, "train", [opt, option("name", STRING, "doomed")], attachments=[att])
    async with env.bot.runtime.db.transaction() as s:  # as the reaper does after the last attempt
        await q.fail(s, 1, None, "The training process stopped unexpectedly 2 times (most often it ran out of memory).")
    posts = await env.fake.wait(lambda: [c for c in env.channel_posts() if "failed:" in c.content],
                                what="the failure message")
    text = posts[0].content
    assert f"<@{DISCORD_ALICE.id}>" in text and "ran out of memory" in text and "/check" in text
    progress = await env.fake.wait(lambda: [c for c in env.fake.calls if c.method == "PATCH" and "❌" in c.content],
                                   what="the progress message marked failed")
    assert "job **1**" in progress[0].content
