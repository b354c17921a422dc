"""Posting to channels: job results from the outbox, and progress messages edited in place."""

from __future__ import annotations

import logging

import discord

from . import render
from .service import ReportView

log = logging.getLogger("tinytutor.announcer")

FAILED_HINT = "Check the file with /check, or try fewer rows, layers or epochs; /jobs shows all your jobs."


class Announcer:
    def __init__(self, bot):
        self.bot = bot
        self._last: dict[int, str] = {}

    def channel(self, channel_id: str):
        return self.bot.get_partial_messageable(int(channel_id))

    # -- results ---------------------------------------------------------------------------------
    def report_messages(self, rep: ReportView, mention: str) -> list[dict]:
        """The completion message (embed, both plots) and the classification report, within limits."""
        m = rep.metrics
        files = [discord.File(rep.confusion_png, filename="confusion_matrix.png"),
                 discord.File(rep.curve_png, filename="training_curve.png")]
        first = {"content": f"{mention} your model **{render.truncate(rep.name, 80)}** is ready.",
                 "embed": render.result_embed(rep.job_id, rep.name, rep.version, m, "confusion_matrix.png"),
                 "files": files, "allowed_mentions": discord.AllowedMentions(users=True)}
        report = f"Classification report (job {rep.job_id}, test split):\n{m['report_text']}"
        blocks = render.code_blocks(report)
        if len(blocks) > 2:  # a very long report goes as a file instead of many messages
            import io

            return [first, {"content": f"Classification report for job {rep.job_id}:",
                            "file": discord.File(io.BytesIO(report.encode()), filename=f"report-job-{rep.job_id}.txt")}]
        return [first] + [{"content": b} for b in blocks]

    async def deliver(self, row) -> None:
        """Send one outbox row to its channel. Raising leaves it for a retry."""
        if not row.channel_id:
            log.info("outbox %s: job %s has no channel (submitted from the command line)", row.id, row.job_id)
            return
        channel = self.channel(row.channel_id)
        p = row.payload
        mention = f"<@{p['owner_id']}>"
        if row.kind == "job_succeeded":
            rep = await self.bot.service.job_report(row.job_id)
            if rep is None:
                return
            for kwargs in self.report_messages(rep, mention):
                await channel.send(**kwargs)
        elif row.kind == "job_failed":
            await channel.send(f"❌ {mention} job **{p['job_id']}** `{render.truncate(p['name'], 80)}` failed: "
                               f"{render.truncate(p.get('error') or '', 1500)}\n{FAILED_HINT}",
                               allowed_mentions=discord.AllowedMentions(users=True))
        elif row.kind == "job_cancelled":
            await channel.send(f"🚫 {mention} job **{p['job_id']}** `{render.truncate(p['name'], 80)}` was cancelled.",
                               allowed_mentions=discord.AllowedMentions(users=True))

    # -- progress --------------------------------------------------------------------------------
    async def update_progress(self) -> int:
        """Edit each job's progress message when its text changed; returns how many were edited."""
        edited = 0
        for view, channel_id, message_id in await self.bot.service.progress_messages():
            text = render.progress_text(view, f"<@{view.owner_id}>")
            finished = view.status in ("succeeded", "failed", "cancelled")
            if self._last.get(view.id) != text:
                try:
                    await self.channel(channel_id).get_partial_message(int(message_id)).edit(
                        content=text, allowed_mentions=discord.AllowedMentions.none())
                    edited += 1
                except discord.NotFound:  # the message was deleted: stop editing it
                    finished = True
                self._last[view.id] = text
            if finished:
                await self.bot.service.clear_progress_message(view.id)
                self._last.pop(view.id, None)
        return edited
