"""Instructors' commands: /queue (with cancel buttons), /quota, /queue_pause, /queue_resume,
/class_report. The cog's check enforces the role in code; the service checks again."""

from __future__ import annotations

import io

import discord
from discord import app_commands
from discord.ext import commands

from .. import render
from ._common import NotInstructor, caller_of, is_instructor, report_error

MAX_BUTTONS = 20  # Discord allows 25 components a message; keep a row free


class CancelJobButton(discord.ui.DynamicItem[discord.ui.Button], template=r"tt:cancel:(?P<job>[0-9]+)"):
    """A cancel button that still works after a restart: the job id lives in the custom id."""

    def __init__(self, job_id: int):
        super().__init__(discord.ui.Button(label=f"Cancel {job_id}", style=discord.ButtonStyle.danger,
                                           custom_id=f"tt:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            bot = interaction.client
            view = await bot.service.cancel(caller_of(interaction, bot.settings), self.job_id)
            state = "stopping now" if view.status == "running" else view.status
            await interaction.response.send_message(f"Job **{view.id}** of <@{view.owner_id}>: {state}.", ephemeral=True,
                                                    allowed_mentions=discord.AllowedMentions.none())
        except Exception as exc:  # buttons are not commands: route to the same handler
            await report_error(interaction, exc)


class Instructors(commands.Cog):
    def __init__(self, bot):
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is not None and is_instructor(interaction, self.bot.settings):
            return True
        raise NotInstructor("This command is for instructors (Manage Server permission, or the instructor role "
                            "set in TinyTutor's config).")

    def caller(self, interaction):
        return caller_of(interaction, self.bot.settings)

    @app_commands.command(name="queue")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        """The class queue: running jobs, then queued ones in the order they will start."""
        caller = self.caller(interaction)
        views = await self.bot.service.class_queue(caller)
        q = await self.bot.service.quotas(caller)
        title = "Class queue" + (" (paused: queued jobs wait)" if q["paused"] else "")
        embed = render.lines_embed(title, [render.job_line(v) for v in views], "Nothing queued or running.")
        view = discord.ui.View(timeout=None)
        for v in views[:MAX_BUTTONS]:
            view.add_item(CancelJobButton(v.id))
        await interaction.response.send_message(embed=embed, view=view if views else discord.utils.MISSING,
                                                ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="quota")
    @app_commands.guild_only()
    @app_commands.describe(max_queued_per_student="queued + running jobs a student may have",
                           max_running_per_student="jobs of one student running at once",
                           max_jobs_per_day="submissions per student per UTC day",
                           max_rows="examples per uploaded file", max_bytes="bytes per uploaded file",
                           max_epochs="epochs per job")
    async def quota(self, interaction: discord.Interaction,
                    max_queued_per_student: app_commands.Range[int, 1, 1000] | None = None,
                    max_running_per_student: app_commands.Range[int, 1, 100] | None = None,
                    max_jobs_per_day: app_commands.Range[int, 1, 10000] | None = None,
                    max_rows: app_commands.Range[int, 1, 10_000_000] | None = None,
                    max_bytes: app_commands.Range[int, 1, 2_000_000_000] | None = None,
                    max_epochs: app_commands.Range[int, 1, 1000] | None = None) -> None:
        """Show the class's quotas; give values to change them."""
        caller = self.caller(interaction)
        values = dict(max_queued_per_student=max_queued_per_student, max_running_per_student=max_running_per_student,
                      max_jobs_per_day=max_jobs_per_day, max_rows=max_rows, max_bytes=max_bytes, max_epochs=max_epochs)
        changed = any(v is not None for v in values.values())
        q = await (self.bot.service.set_quotas(caller, **values) if changed else self.bot.service.quotas(caller))
        lines = [f"`{k}` = **{v:,}**" for k, v in q.items() if k != "paused"]
        lines.append(f"queue: **{'paused' if q['paused'] else 'running'}**")
        embed = discord.Embed(title="Class quotas" + (" (updated)" if changed else ""), description="\n".join(lines),
                              color=render.BLUE)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="queue_pause")
    @app_commands.guild_only()
    async def queue_pause(self, interaction: discord.Interaction) -> None:
        """Pause the class queue: running jobs finish, queued jobs wait."""
        await self.bot.service.set_paused(self.caller(interaction), True)
        await interaction.response.send_message("⏸️ The class queue is paused; running jobs finish, queued jobs wait.",
                                                ephemeral=True)

    @app_commands.command(name="queue_resume")
    @app_commands.guild_only()
    async def queue_resume(self, interaction: discord.Interaction) -> None:
        """Resume the class queue."""
        await self.bot.service.set_paused(self.caller(interaction), False)
        await interaction.response.send_message("▶️ The class queue is running again.", ephemeral=True)

    @app_commands.command(name="class_report")
    @app_commands.guild_only()
    async def class_report(self, interaction: discord.Interaction) -> None:
        """Jobs and best results per student, with every job as a CSV file."""
        caller = self.caller(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        students, csv_bytes = await self.bot.service.class_report(caller)
        lines = [f"<@{s['student']}> — {s['jobs']} job(s): {s['succeeded']} done, {s['failed']} failed, "
                 f"{s['cancelled']} cancelled, {s['open']} open · best: "
                 + (f"**{render.truncate(s['best_model'], 40)}** macro-F1 {s['best_macro_f1']:.3f}"
                    if s["best_macro_f1"] is not None else "none yet") for s in students]
        embed = render.lines_embed("Class report", lines, "No jobs in this class yet.")
        await interaction.followup.send(embed=embed, file=discord.File(io.BytesIO(csv_bytes), filename="class-jobs.csv"),
                                        ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
