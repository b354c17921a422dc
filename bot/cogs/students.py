"""Students' commands: /train (also to an assignment, or like an earlier job), /check, /predict, "Classify message", /predict_file, /models, /jobs,
/cancel, /report. Each defers at once when it has work to do, then answers.

Refusals are private on every command. The answers the channel sees (/predict, /predict_file,
/report) check what they can before acknowledging, and anything refused after a public defer goes
through ``send_ephemeral``, which first replaces the public "thinking" message."""

from __future__ import annotations

import io

import discord
from discord import app_commands
from discord.ext import commands

from core.errors import plural
from core.spec import Method, Strategy
from service.errors import InvalidRequest

from .. import render
from ._common import (
    caller_of,
    check_size,
    defer_public,
    model_choices,
    model_id,
    read_attachment,
    send_public,
)
from .assignments import assignment_choices


class Students(commands.Cog):
    def __init__(self, bot):
        self.bot = bot
        # Its errors reach the tree's on_error like every command's (a handler here would answer twice).
        self.menu = app_commands.ContextMenu(name="Classify message", callback=self.classify_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @property
    def service(self):
        return self.bot.service

    def caller(self, interaction):
        return caller_of(interaction, self.bot.settings)

    # -- /train ------------------------------------------------------------------------------------
    @app_commands.command(name="train")
    @app_commands.guild_only()
    @app_commands.describe(
        name="a name for your model",
        dataset="CSV, TSV, JSONL, JSON or XLSX with a text and a label column (optional with assignment or like)",
        layers="encoder layers to keep (the default base model has 6)",
        strategy="which layers to keep: alternate (TinyBERT), bottom or top",
        method="full, LoRA, the head only, distill (TinyBERT), or probe (frozen base + linear head: seconds)",
        epochs="passes over the training data (default: until validation stops improving)",
        learning_rate="step size (default depends on the method)",
        max_length="tokens per window; longer texts are read in overlapping windows",
        validation="a separate validation file with the same columns (optional)",
        teacher="distill: one of your models (same labels) to learn from; default: fine-tune a full-size one first",
        augment="distill: extra perturbed copies of each text, labelled by the teacher (0-10)",
        text_column="the column with the texts (found by name if empty)",
        label_column="the column with the labels (found by name if empty)",
        assignment="submit to an assignment: also scored on its hidden test set (no file: its training file)",
        like="a job number: start from its settings (the options you give override them; no file: its file)",
        seed="random seed (a rerun with another seed shows how much a score is luck)",
    )
    @app_commands.autocomplete(teacher=model_choices, assignment=assignment_choices)
    async def train(self, interaction: discord.Interaction, name: str, dataset: discord.Attachment | None = None,
                    layers: app_commands.Range[int, 1, 48] | None = None,
                    strategy: Strategy | None = None,
                    method: Method | None = None,
                    epochs: app_commands.Range[int, 1, 100] | None = None,
                    learning_rate: app_commands.Range[float, 1e-7, 0.5] | None = None,
                    max_length: app_commands.Range[int, 8, 512] | None = None,
                    validation: discord.Attachment | None = None, teacher: str | None = None,
                    augment: app_commands.Range[int, 0, 10] | None = None, text_column: str | None = None,
                    label_column: str | None = None, assignment: str | None = None,
                    like: app_commands.Range[int, 1, 2**31 - 1] | None = None,
                    seed: app_commands.Range[int, 0, 2**31 - 1] | None = None) -> None:
        """Train a pruned BERT classifier on your labelled texts; the report is posted here when it is done."""
        caller = self.caller(interaction)
        teacher_id = model_id(teacher)
        if dataset is None and not (assignment or like):
            raise InvalidRequest("Attach a dataset to train on (or name an assignment with a training file, or "
                                 "rerun one of your jobs with like).")
        check_size(dataset, self.bot.settings)
        check_size(validation, self.bot.settings)
        await interaction.response.defer(ephemeral=True, thinking=True)
        content = await read_attachment(dataset, self.bot.settings) if dataset else None
        val = (await read_attachment(validation, self.bot.settings), validation.filename) if validation else None
        params = {"layers": layers, "strategy": strategy, "method": method, "epochs": epochs, "lr": learning_rate,
                  "max_length": max_length, "teacher_model_id": teacher_id, "augment": augment,
                  "text_column": text_column, "label_column": label_column, "seed": seed}
        sub = await self.service.submit(caller, content, dataset.filename if dataset else None, name=name,
                                        params=params, validation=val, channel_id=str(interaction.channel_id),
                                        assignment=assignment, like=like)
        job = sub.job
        lines = [f"Queued job **{job.id}** `{job.name}`: {sub.rows:,} examples, {len(sub.labels)} labels. "
                 f"{render.queue_place(job)}.",
                 "Progress and the report will appear in this channel."]
        if sub.assignment is not None:
            lines.append(render.submitted_line(sub.assignment))
        lines += [f"⚠️ {w['message']}" + (f" {w['hint']}" if w.get("hint") else "") for w in sub.warnings[:5]]
        await interaction.followup.send(render.truncate("\n".join(lines), render.CONTENT_LIMIT), ephemeral=True)
        try:
            msg = await interaction.channel.send(render.progress_text(job, interaction.user.mention),
                                                 allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden:  # the job is queued; only the channel message is missing
            await interaction.followup.send("I cannot post in this channel, so progress and the report will not "
                                            "appear here; ask your instructor to let TinyTutor send messages. "
                                            "/jobs and /report still work.", ephemeral=True)
            return
        await self.bot.service.remember_progress_message(job.id, str(interaction.channel_id), str(msg.id))

    # -- /check ------------------------------------------------------------------------------------
    @app_commands.command(name="check")
    @app_commands.guild_only()
    @app_commands.describe(dataset="the file to check", text_column="the column with the texts (found by name if empty)",
                           label_column="the column with the labels (found by name if empty)")
    async def check(self, interaction: discord.Interaction, dataset: discord.Attachment,
                    text_column: str | None = None, label_column: str | None = None) -> None:
        """Check a dataset for problems without training (row-level errors, warnings, label counts)."""
        caller = self.caller(interaction)
        check_size(dataset, self.bot.settings)
        await interaction.response.defer(ephemeral=True, thinking=True)
        content = await read_attachment(dataset, self.bot.settings)
        info = await self.service.check(caller, content, dataset.filename,
                                        {"text_column": text_column, "label_column": label_column})
        labels = ", ".join(f"{k} ({v})" for k, v in info["labels"].items())
        lines = [f"✅ `{dataset.filename}` can be trained on: {info['rows']:,} examples, {len(info['labels'])} labels, "
                 f"{info['format']} in {info['encoding']}; text column `{info['text_column']}`, label column "
                 f"`{info['label_column']}`.", f"Labels: {labels}"]
        lines += [f"⚠️ {w['message']}" + (f" {w['hint']}" if w.get("hint") else "") for w in info["warnings"]]
        for chunk in render.split_text("\n".join(lines)):
            await interaction.followup.send(chunk, ephemeral=True)

    # -- predictions -------------------------------------------------------------------------------
    @app_commands.command(name="predict")
    @app_commands.guild_only()
    @app_commands.describe(model="one of your models, or one shared with the class", text="the text to classify",
                           explain="also say which words drove the label (answered to you alone)")
    @app_commands.autocomplete(model=model_choices)
    async def predict(self, interaction: discord.Interaction, model: str, text: app_commands.Range[str, 1, 2000],
                      explain: bool = False) -> None:
        """Classify a text with one of your models."""
        caller = self.caller(interaction)
        mid = model_id(model)
        await self.service.model(caller, mid)  # refused privately, before anything is public
        await self.service.check_rate(caller, "predict")
        if explain:  # a student's explanations are theirs alone: private from the first answer
            await interaction.response.defer(ephemeral=True, thinking=True)
        else:
            await defer_public(interaction)
        view, preds = await self.service.predict(caller, mid, [text], explain=explain)
        content = f"Model **{render.truncate(view.label, 80)}**\n{render.prediction_lines(text, preds[0])}"
        if explain:
            await interaction.followup.send(content, ephemeral=True)
        else:
            await send_public(interaction, content=content)

    async def classify_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Classify any chat message with your default model, and say which words drove it (private answer)."""
        caller = self.caller(interaction)
        if not message.content.strip():
            raise InvalidRequest("That message has no text to classify.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        view, preds = await self.service.predict(caller, None, [message.content], explain=True)
        await interaction.followup.send(f"Model **{render.truncate(view.label, 80)}**\n"
                                        f"{render.prediction_lines(message.content, preds[0])}", ephemeral=True)

    @app_commands.command(name="predict_file")
    @app_commands.guild_only()
    @app_commands.describe(dataset="a CSV/XLSX/JSONL with a text column", model="the model to use (default: yours)")
    @app_commands.autocomplete(model=model_choices)
    async def predict_file(self, interaction: discord.Interaction, dataset: discord.Attachment,
                           model: str | None = None) -> None:
        """Classify every row of a file; you get it back with predicted_label and confidence columns."""
        caller = self.caller(interaction)
        check_size(dataset, self.bot.settings)
        mid = model_id(model)
        await self.service.model(caller, mid)  # refused privately, before anything is public
        await self.service.check_rate(caller, "predict_file")
        await defer_public(interaction)
        content = await read_attachment(dataset, self.bot.settings)
        view, csv_bytes, n = await self.service.predict_file(caller, mid, content, dataset.filename)
        stem = dataset.filename.rsplit(".", 1)[0][:60] or "predictions"
        await send_public(interaction, content=f"{plural(n, 'row')} classified with **{render.truncate(view.label, 80)}**.",
                          file=discord.File(io.BytesIO(csv_bytes), filename=f"{stem}-predictions.csv"))

    # -- models --------------------------------------------------------------------------------------
    models = app_commands.Group(name="models", description="your models: list, default, rename, delete, share",
                                guild_only=True)

    @models.command(name="list")
    async def models_list(self, interaction: discord.Interaction) -> None:
        """Your models and those shared with the class (⭐ = your default for "Classify message")."""
        found = await self.service.models(self.caller(interaction))
        embed = render.lines_embed("Models", [render.model_line(m) for m in found],
                                   "No models yet: train one with /train.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @models.command(name="default")
    @app_commands.describe(model="the model \"Classify message\" uses")
    @app_commands.autocomplete(model=model_choices)
    async def models_default(self, interaction: discord.Interaction, model: str) -> None:
        """Choose the model that "Classify message" uses."""
        m = await self.service.set_default_model(self.caller(interaction), model_id(model))
        await interaction.response.send_message(f"⭐ **{m.label}** is now your default model.", ephemeral=True)

    @models.command(name="rename")
    @app_commands.describe(model="the model to rename", name="its new name")
    @app_commands.autocomplete(model=model_choices)
    async def models_rename(self, interaction: discord.Interaction, model: str, name: str) -> None:
        """Rename one of your models."""
        m = await self.service.rename_model(self.caller(interaction), model_id(model), name)
        await interaction.response.send_message(f"Renamed: **{m.label}**.", ephemeral=True)

    @models.command(name="delete")
    @app_commands.describe(model="the model to delete (its report stays)")
    @app_commands.autocomplete(model=model_choices)
    async def models_delete(self, interaction: discord.Interaction, model: str) -> None:
        """Delete one of your models and its files."""
        caller = self.caller(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        m = await self.service.delete_model(caller, model_id(model))
        await interaction.followup.send(f"Deleted **{m.label}**.", ephemeral=True)

    @models.command(name="share")
    @app_commands.describe(model="the model", shared="True: the class may use it; False: only you")
    @app_commands.autocomplete(model=model_choices)
    async def models_share(self, interaction: discord.Interaction, model: str, shared: bool = True) -> None:
        """Share one of your models with the class (or stop sharing it)."""
        m = await self.service.share_model(self.caller(interaction), model_id(model), shared)
        state = "shared with the class" if m.visibility == "class" else "private again"
        await interaction.response.send_message(f"**{m.label}** is {state}.", ephemeral=True)

    # -- jobs --------------------------------------------------------------------------------------
    @app_commands.command(name="jobs")
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        """Your training jobs: position and ETA, progress, results."""
        views = await self.service.jobs(self.caller(interaction), limit=30)
        embed = render.lines_embed("Your jobs", [render.job_line(v) for v in views], "No jobs yet: start one with /train.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="cancel")
    @app_commands.guild_only()
    @app_commands.describe(job="the job number")
    async def cancel(self, interaction: discord.Interaction, job: int) -> None:
        """Cancel one of your jobs (a running one is stopped within seconds)."""
        view = await self.service.cancel(self.caller(interaction), job)
        state = "stopping now" if view.status == "running" else view.status
        await interaction.response.send_message(f"Job **{view.id}** `{view.name}`: {state}.", ephemeral=True)

    @app_commands.command(name="suspects")
    @app_commands.guild_only()
    @app_commands.describe(job="the job number")
    async def suspects(self, interaction: discord.Interaction, job: int) -> None:
        """The rows of your file whose label looks wrong, to fix and upload again (only you see them)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        rep, rows, data = await self.service.suspect_rows(self.caller(interaction), job)
        if not rows:
            await interaction.followup.send(f"No label of job **{rep.job_id}** looks wrong to a model that never "
                                            "saw it.", ephemeral=True)
            return
        lines = [f"**{plural(len(rows), 'label')}** of job **{rep.job_id}** look wrong to a model that never saw "
                 "them (most suspicious first; the file has them all):"]
        for r in rows[:10]:
            lines.append(f"row {r['row']}: labelled **{render.truncate(r['label'], 40)}**, looks like "
                         f"**{render.truncate(r['expected'], 40)}** ({r['expected_probability']:.0%}) — "
                         f"{discord.utils.escape_markdown(render.truncate(r['text'], 120))}")
        await interaction.followup.send("\n".join(lines)[:1900], ephemeral=True,
                                        file=discord.File(io.BytesIO(data), filename=f"job-{rep.job_id}-suspects.csv"))

    @app_commands.command(name="report")
    @app_commands.guild_only()
    @app_commands.describe(job="the job number")
    async def report(self, interaction: discord.Interaction, job: int) -> None:
        """Post a finished job's report here again."""
        rep = await self.service.report(self.caller(interaction), job)  # a quick read: refused privately
        first, *rest = self.bot.announcer.report_messages(rep, interaction.user.mention, ping=False)
        await interaction.response.send_message(**first)
        for kwargs in rest:
            await interaction.followup.send(**kwargs)
