"""Instructors' commands: /queue (paged, with cancel buttons), /quota, /queue_pause, /queue_resume,
/class_report, /dashboard (a sign-in link to the web dashboard).

Each is synced with ``default_member_permissions`` = Manage Server, so Discord hides them from
students; a server grants them to a TA role in Server Settings → Integrations → TinyTutor. That is
only what the client shows: the cog's check enforces the rule in code (Manage Server or the
configured instructor role), and the service checks again."""

from __future__ import annotations

import io

import discord
from discord import app_commands
from discord.ext import commands

from .. import render
from ._common import NotInstructor, caller_of, is_instructor, report_error

PAGE_SIZE = 10  # jobs per /queue page: one cancel button each (two rows of five), plus the page buttons


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


class QueuePageButton(discord.ui.DynamicItem[discord.ui.Button], template=r"tt:queue:(?P<page>[0-9]+)"):
    """Previous/next on /queue: the page lives in the custom id, so the buttons work after a restart."""

    def __init__(self, page: int, label: str = "", disabled: bool = False):
        super().__init__(discord.ui.Button(label=label or f"Page {page + 1}", style=discord.ButtonStyle.secondary,
                                           custom_id=f"tt:queue:{page}", disabled=disabled))
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            bot = interaction.client
            if not is_instructor(interaction, bot.settings):
                raise NotInstructor("This button is for instructors.")
            embed, view = await queue_page(bot, caller_of(interaction, bot.settings), self.page)
            await interaction.response.edit_message(embed=embed, view=view)
        except Exception as exc:
            await report_error(interaction, exc)


async def queue_page(bot, caller, page: int) -> tuple[discord.Embed, discord.ui.View | None]:
    """One page of the class queue: its jobs, a cancel button for each, and previous/next."""
    views = await bot.service.class_queue(caller)
    q = await bot.service.quotas(caller)
    pages = max(1, -(-len(views) // PAGE_SIZE))
    page = min(max(0, page), pages - 1)
    shown = views[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    title = "Class queue" + (" (paused: queued jobs wait)" if q["paused"] else "")
    embed = render.lines_embed(title, [render.job_line(v) for v in shown], "Nothing queued or running.")
    if not views:
        return embed, None
    embed.set_footer(text=f"Page {page + 1} of {pages} · {len(views)} job{'s' if len(views) != 1 else ''}")
    view = discord.ui.View(timeout=None)
    for v in shown:
        view.add_item(CancelJobButton(v.id))
    if pages > 1:
        prev = QueuePageButton(max(0, page - 1), "◀ Previous", disabled=page == 0)
        nxt = QueuePageButton(min(pages - 1, page + 1), "Next ▶", disabled=page == pages - 1)
        prev.row = nxt.row = 2
        view.add_item(prev)
        view.add_item(nxt)
    return embed, view


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
    @app_commands.default_permissions(manage_guild=True)
    async def queue(self, interaction: discord.Interaction) -> None:
        """The class queue: running jobs, then queued ones in the order they will start."""
        embed, view = await queue_page(self.bot, self.caller(interaction), 0)
        await interaction.response.send_message(embed=embed, view=view or discord.utils.MISSING, ephemeral=True)

    @app_commands.command(name="dashboard")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def dashboard(self, interaction: discord.Interaction) -> None:
        """A private, single-use sign-in link to the class's web dashboard (valid for a few minutes)."""
        web = self.bot.settings.web
        if not web.enabled:
            await interaction.response.send_message(
                "The web dashboard is not switched on for this server: the operator sets `enabled = true` in "
                "the [web] section of TinyTutor's config.", ephemeral=True)
            return
        url = await self.bot.service.mint_link(self.caller(interaction))
        minutes = f"{web.link_minutes:g}"
        await interaction.response.send_message(
            f"Your dashboard link (works once, for {minutes} minutes; do not share it): <{url}>", ephemeral=True)

    @app_commands.command(name="quota")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(max_queued_per_student="queued + running jobs a student may have",
                           max_running_per_student="jobs of one student running at once",
                           max_jobs_per_day="submissions per student per UTC day",
                           max_rows="examples per uploaded file", max_bytes="bytes per uploaded file",
                           max_epochs="epochs per job", checks_per_hour="/check per student per hour",
                           predict_files_per_hour="/predict_file per student per hour",
                           predictions_per_minute="/predict per student per minute",
                           max_disk_mb="MB of uploads and models the class may store")
    async def quota(self, interaction: discord.Interaction,
                    max_queued_per_student: app_commands.Range[int, 1, 1000] | None = None,
                    max_running_per_student: app_commands.Range[int, 1, 100] | None = None,
                    max_jobs_per_day: app_commands.Range[int, 1, 10000] | None = None,
                    max_rows: app_commands.Range[int, 1, 10_000_000] | None = None,
                    max_bytes: app_commands.Range[int, 1, 2_000_000_000] | None = None,
                    max_epochs: app_commands.Range[int, 1, 1000] | None = None,
                    checks_per_hour: app_commands.Range[int, 1, 10000] | None = None,
                    predict_files_per_hour: app_commands.Range[int, 1, 10000] | None = None,
                    predictions_per_minute: app_commands.Range[int, 1, 10000] | None = None,
                    max_disk_mb: app_commands.Range[int, 1, 10_000_000] | None = None) -> None:
        """Show the class's quotas; give values to change them."""
        caller = self.caller(interaction)
        values = dict(max_queued_per_student=max_queued_per_student, max_running_per_student=max_running_per_student,
                      max_jobs_per_day=max_jobs_per_day, max_rows=max_rows, max_bytes=max_bytes, max_epochs=max_epochs,
                      checks_per_hour=checks_per_hour, predict_files_per_hour=predict_files_per_hour,
                      predictions_per_minute=predictions_per_minute, max_disk_mb=max_disk_mb)
        changed = any(v is not None for v in values.values())
        q = await (self.bot.service.set_quotas(caller, **values) if changed else self.bot.service.quotas(caller))
        lines = [f"`{k}` = **{v:,}**" for k, v in q.items() if k != "paused"]
        lines.append(f"queue: **{'paused' if q['paused'] else 'running'}**")
        embed = discord.Embed(title="Class quotas" + (" (updated)" if changed else ""), description="\n".join(lines),
                              color=render.BLUE)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="queue_pause")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def queue_pause(self, interaction: discord.Interaction) -> None:
        """Pause the class queue: running jobs finish, queued jobs wait."""
        await self.bot.service.set_paused(self.caller(interaction), True)
        await interaction.response.send_message("⏸️ The class queue is paused; running jobs finish, queued jobs wait.",
                                                ephemeral=True)

    @app_commands.command(name="queue_resume")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def queue_resume(self, interaction: discord.Interaction) -> None:
        """Resume the class queue."""
        await self.bot.service.set_paused(self.caller(interaction), False)
        await interaction.response.send_message("▶️ The class queue is running again.", ephemeral=True)

    @app_commands.command(name="class_report")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
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
