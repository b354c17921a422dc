"""/experiment run and /experiment show: several jobs differing in one setting, queued in one request and
announced together (the chart and the table, once, when the last job ends)."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from core.spec import MAX_SWEEP_VALUES, Method, Strategy
from service.errors import InvalidRequest

from .. import render
from ._common import caller_of, check_size, defer_public, read_attachment, send_public

Setting = Literal["layers", "max_length", "method", "strategy", "train_share"]


class Experiments(commands.Cog):
    def __init__(self, bot):
        self.bot = bot

    experiment = app_commands.Group(name="experiment", guild_only=True,
                                    description="how small can it get: several jobs that differ in one setting")

    @experiment.command(name="run")
    @app_commands.describe(
        name="a name for the experiment (each job's model is named after it and its value)",
        setting="the one setting that differs (train_share: percent of the training data, a learning curve)",
        values=f"its values, separated by commas (2 to {MAX_SWEEP_VALUES}): 1,2,3,6 for layers, 10,25,50,100 for train_share",
        dataset="CSV, TSV, JSONL, JSON or XLSX with a text and a label column (optional with like)",
        layers="encoder layers to keep in every job (unless the experiment varies them)",
        method="full, LoRA, the head only, distill (TinyBERT), or probe, in every job",
        strategy="which layers to keep: alternate (TinyBERT), bottom or top",
        epochs="passes over the training data (default: until validation stops improving)",
        max_length="tokens per window, in every job",
        seed="random seed, the same in every job",
        like="a job number: start from its settings (no file: its file)",
        text_column="the column with the texts (found by name if empty)",
        label_column="the column with the labels (found by name if empty)",
    )
    async def run(self, interaction: discord.Interaction, name: str, setting: Setting, values: str,
                  dataset: discord.Attachment | None = None, layers: app_commands.Range[int, 1, 48] | None = None,
                  method: Method | None = None, strategy: Strategy | None = None,
                  epochs: app_commands.Range[int, 1, 100] | None = None,
                  max_length: app_commands.Range[int, 8, 512] | None = None,
                  seed: app_commands.Range[int, 0, 2**31 - 1] | None = None,
                  like: app_commands.Range[int, 1, 2**31 - 1] | None = None,
                  text_column: str | None = None, label_column: str | None = None) -> None:
        """Queue one job per value of a setting; one chart and table are posted here when the last ends."""
        caller = caller_of(interaction, self.bot.settings)
        if dataset is None and not like:
            raise InvalidRequest("Attach a dataset for the experiment (or rerun one of your jobs' files with like).")
        check_size(dataset, self.bot.settings)
        await interaction.response.defer(ephemeral=True, thinking=True)
        content = await read_attachment(dataset, self.bot.settings) if dataset else None
        params = {"layers": layers, "method": method, "strategy": strategy, "epochs": epochs,
                  "max_length": max_length, "seed": seed, "text_column": text_column, "label_column": label_column}
        sub = await self.bot.service.submit(caller, content, dataset.filename if dataset else None, name=name,
                                            params=params, channel_id=str(interaction.channel_id), like=like,
                                            sweep=f"{setting}={values}")
        jobs = ", ".join(f"**{j.id}** ({j.name.rsplit(' ', 1)[-1]})" for j in sub.jobs)
        last = sub.jobs[-1]
        when = f"; the last one's result expected {render.eta(last.eta_seconds)}" if last.position else ""
        lines = [f"Queued experiment **{sub.experiment_id}** `{render.truncate(name, 80)}`: {len(sub.jobs)} jobs on "
                 f"{sub.rows:,} examples, {len(sub.labels)} labels: {jobs}.",
                 f"The first job: {render.queue_place(sub.job)}{when}.",
                 "When the last one ends, one chart and table are posted in this channel; /jobs shows each job."]
        lines += [f"⚠️ {w['message']}" + (f" {w['hint']}" if w.get("hint") else "") for w in sub.warnings[:5]]
        await interaction.followup.send(render.truncate("\n".join(lines), render.CONTENT_LIMIT), ephemeral=True)

    @experiment.command(name="show")
    @app_commands.describe(experiment="the experiment's number")
    async def show(self, interaction: discord.Interaction, experiment: app_commands.Range[int, 1, 2**31 - 1]) -> None:
        """Post an experiment's table (and its chart, once it has finished) here."""
        caller = caller_of(interaction, self.bot.settings)
        await self.bot.service.experiment(caller, experiment, chart=False)  # refused privately, before anything is public
        await defer_public(interaction)  # drawing a chart the first time takes a moment
        view = await self.bot.service.experiment(caller, experiment)
        if view.finished_at is None:
            running = sum(r.status in ("queued", "running") for r in view.runs)
            content = (f"Experiment **{view.id}** `{render.truncate(view.name, 80)}` is still running "
                       f"({running} of {len(view.runs)} jobs to go):\n```\n{view.table()}\n```")
            await send_public(interaction, content=render.truncate(content, render.CONTENT_LIMIT))
            return
        files = [discord.File(view.chart_png, filename=f"experiment-{view.id}.png")] if view.chart_png else []
        await send_public(interaction, content=render.experiment_text(view, interaction.user.mention), files=files,
                          allowed_mentions=discord.AllowedMentions.none())
