"""Assignments, the leaderboard and comparing runs: /assignment create|list|pick|close|reveal|grades,
/leaderboard, /compare. (Submitting is /train's ``assignment`` option.)

The /assignment group is visible to everyone (students list assignments and pick their submissions);
creating, closing, revealing and exporting grades are checked in code before anything is downloaded
or deferred, and the service checks again. Every answer here is private: a student's board shows
model names and numbers only (the public part's until the reveal), an instructor's also who. The
reveal itself is posted by the announcer, from the outbox, once."""

from __future__ import annotations

import io

import discord
from discord import app_commands
from discord.ext import commands

from service.errors import PermissionDenied, ServiceError

from .. import render
from ._common import caller_of, check_size, read_attachment


async def assignment_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    bot = interaction.client
    try:
        views = await bot.service.assignments(caller_of(interaction, bot.settings))
    except ServiceError:
        return []
    current = current.lower()
    return [app_commands.Choice(name=render.truncate(f"{v.name}{'' if v.is_open else ' (closed)'}", 100),
                                value=v.name[:100]) for v in views if current in v.name.lower()][:25]


async def submission_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
    """The caller's scored submissions to the assignment typed so far, with their public score only."""
    bot = interaction.client
    name = getattr(interaction.namespace, "name", None)
    if not name:
        return []
    try:
        mine = await bot.service.my_submissions(caller_of(interaction, bot.settings), name)
    except ServiceError:
        return []
    current = current.strip()
    return [app_commands.Choice(name=render.truncate(
        f"job {r.job_id} {r.model_name} · public {r.macro_f1:.3f}{' · picked' if r.picked else ''}", 100),
        value=r.job_id) for r in mine if current in str(r.job_id) or current.lower() in r.model_name.lower()][:25]


class Assignments(commands.Cog):
    def __init__(self, bot):
        self.bot = bot

    @property
    def service(self):
        return self.bot.service

    def caller(self, interaction):
        return caller_of(interaction, self.bot.settings)

    assignment = app_commands.Group(name="assignment", description="assignments with a hidden test set",
                                    guild_only=True)

    @assignment.command(name="create")
    @app_commands.describe(
        name="a short name students type in /train assignment:",
        test_file="the labelled test file; hidden: never shown to students, never trained on",
        train_file="a training file students may use (optional)",
        deadline="e.g. 2026-12-15 or 2026-12-15T18:00 (UTC unless you add an offset like +01:00)",
        max_submissions="submissions per student in all (cancelled and failed jobs do not count)",
        daily_cap="submissions per student per day (UTC; cancelled and failed jobs do not count)",
        public_share="part of the test set scored for the public board (default 0.3); the rest decides the "
                     "final board",
        picks="submissions each student may pick to count for the final board (default 2)",
        description="what the task is about")
    async def create(self, interaction: discord.Interaction, name: str, test_file: discord.Attachment,
                     train_file: discord.Attachment | None = None, deadline: str | None = None,
                     max_submissions: app_commands.Range[int, 1, 1000] | None = None,
                     daily_cap: app_commands.Range[int, 1, 100] | None = None,
                     public_share: app_commands.Range[float, 0.1, 0.9] | None = None,
                     picks: app_commands.Range[int, 1, 10] | None = None,
                     description: str | None = None) -> None:
        """Instructors: set an assignment scored on a hidden test set, with a class leaderboard."""
        caller = self.caller(interaction)
        if not caller.steers:  # before anything is downloaded
            raise PermissionDenied("Only instructors can set assignments.")
        check_size(test_file, self.bot.settings)
        check_size(train_file, self.bot.settings)
        await interaction.response.defer(ephemeral=True, thinking=True)
        test = (await read_attachment(test_file, self.bot.settings), test_file.filename)
        train = (await read_attachment(train_file, self.bot.settings), train_file.filename) if train_file else None
        view = await self.service.create_assignment(caller, name, test, train=train, deadline=deadline,
                                                    max_submissions=max_submissions, description=description or "",
                                                    public_share=public_share, daily_cap=daily_cap, max_picks=picks,
                                                    channel_id=str(interaction.channel_id))
        lines = [f"Assignment **{view.name}** is set: {view.test_rows:,} hidden test examples, "
                 f"{view.public_share:.0%} of them for the public board. The final board is revealed here "
                 + ("at the deadline." if view.deadline else "when you run `/assignment reveal`.")]
        if view.baseline_macro_f1 is not None:
            lines.append(f"TF-IDF baseline on the public part, trained on the training file: macro-F1 "
                         f"{view.baseline_macro_f1:.3f} (the board's reference line).")
        lines += [f"⚠️ {w}" for w in view.warnings or []]
        await interaction.followup.send(render.truncate("\n".join(lines), render.CONTENT_LIMIT), ephemeral=True)
        try:
            await interaction.channel.send(render.assignment_announcement(view),
                                           allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden:
            await interaction.followup.send("I cannot post in this channel, so the class was not told; share the "
                                            "assignment's name yourself.", ephemeral=True)

    @assignment.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """The class's assignments: labels, deadline, and your submissions left."""
        views = await self.service.assignments(self.caller(interaction))
        embed = render.lines_embed("Assignments", [render.assignment_line(v) for v in views],
                                   "No assignments yet.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @assignment.command(name="pick")
    @app_commands.describe(name="the assignment", job="one of your scored submissions to it",
                           remove="take it out of your picks instead")
    @app_commands.autocomplete(name=assignment_choices, job=submission_choices)
    async def pick(self, interaction: discord.Interaction, name: str, job: int, remove: bool = False) -> None:
        """Choose the submissions that count for the final board (without picks: your best public ones)."""
        picks = await self.service.pick(self.caller(interaction), name, job, remove=remove)
        await interaction.response.send_message(picks.text, ephemeral=True)

    @assignment.command(name="reveal")
    @app_commands.describe(name="the assignment to reveal now")
    @app_commands.autocomplete(name=assignment_choices)
    async def reveal(self, interaction: discord.Interaction, name: str) -> None:
        """Instructors: close the assignment and reveal its final board (once its last submissions finish)."""
        done = await self.service.reveal(self.caller(interaction), name)
        if not done.revealed:
            text = (f"Assignment **{done.assignment}** is closed; {done.waiting} submission(s) are still training. "
                    "The final board is revealed here as soon as they finish.")
            await interaction.response.send_message(text, ephemeral=True)
            return
        await interaction.response.send_message(
            f"The final board of **{done.assignment}** is revealed: it is being posted in its channel, and each "
            "student gets their place by direct message.", embed=render.leaderboard_embed(done.board),
            ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @assignment.command(name="grades")
    @app_commands.describe(name="the assignment",
                           rule="linear (0 at the baseline, 100 at the best), linear:50-100, or A=0.85,B=0.75,F=0")
    @app_commands.autocomplete(name=assignment_choices)
    async def grades(self, interaction: discord.Interaction, name: str, rule: str = "linear") -> None:
        """Instructors: the grades as a CSV an LMS imports (private macro-F1, place, grade)."""
        caller = self.caller(interaction)
        if not caller.steers:
            raise PermissionDenied("Only instructors can export grades.")
        data = await self.service.grades_csv(caller, name, rule)
        await interaction.response.send_message(
            f"Grades for **{render.truncate(name, 80)}** by rule `{render.truncate(rule, 100)}`:", ephemeral=True,
            file=discord.File(io.BytesIO(data), filename=f"{name[:60]}-grades.csv"))

    @assignment.command(name="close")
    @app_commands.describe(name="the assignment to close")
    @app_commands.autocomplete(name=assignment_choices)
    async def close(self, interaction: discord.Interaction, name: str) -> None:
        """Instructors: stop taking submissions (queued ones still run and are scored)."""
        view = await self.service.close_assignment(self.caller(interaction), name)
        await interaction.response.send_message(f"Assignment **{view.name}** is closed; the board stays.",
                                                ephemeral=True)

    @app_commands.command(name="leaderboard")
    @app_commands.guild_only()
    @app_commands.describe(assignment="the assignment",
                           everything="instructors: every submission, with a CSV export")
    @app_commands.autocomplete(assignment=assignment_choices)
    async def leaderboard(self, interaction: discord.Interaction, assignment: str, everything: bool = False) -> None:
        """Each student's best model on an assignment's hidden test set, with size and speed."""
        caller = self.caller(interaction)
        board = await self.service.leaderboard(caller, assignment)
        if not everything:
            await interaction.response.send_message(embed=render.leaderboard_embed(board), ephemeral=True,
                                                    allowed_mentions=discord.AllowedMentions.none())
            return
        if not caller.steers:
            raise PermissionDenied("Only instructors can see every submission; leave everything out to see the board.")
        data = await self.service.leaderboard_csv(caller, assignment)
        await interaction.response.send_message(
            embed=render.leaderboard_embed(board, everything=True), ephemeral=True,
            file=discord.File(io.BytesIO(data), filename=f"{board.assignment.name[:60]}-submissions.csv"),
            allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="compare")
    @app_commands.guild_only()
    @app_commands.describe(job_a="a finished job (yours or shared with the class)", job_b="another one")
    async def compare(self, interaction: discord.Interaction, job_a: int, job_b: int) -> None:
        """Two finished jobs side by side: settings that differ, scores, per-class F1, size and speed."""
        c = await self.service.compare(self.caller(interaction), job_a, job_b)
        await interaction.response.send_message(embed=render.comparison_embed(c), ephemeral=True)
