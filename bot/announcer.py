"""Posting to channels: job results from the outbox, and progress messages edited in place."""

from __future__ import annotations

import logging
from pathlib import Path

import discord

from service import ReportView

from . import render

log = logging.getLogger("tinytutor.announcer")

def refused(exc: Exception) -> bool:
    """Discord answered that this channel will not take the message (not a passing outage)."""
    return isinstance(exc, discord.Forbidden | discord.NotFound)


FAILED_HINT = "Check the file with /check, or try fewer rows, layers or epochs; /jobs shows all your jobs."


class Announcer:
    def __init__(self, bot):
        self.bot = bot
        self._last: dict[int, str] = {}

    def channel(self, channel_id: str):
        return self.bot.get_partial_messageable(int(channel_id))

    # -- results ---------------------------------------------------------------------------------
    def report_messages(self, rep: ReportView, mention: str, ping: bool = True) -> list[dict]:
        """The completion message (embed, both plots) and the classification report, within limits.
        ``ping``: the completion message notifies the job's owner (only them); the rest notify nobody."""
        m = rep.metrics
        # plots missing here (removed, or written on another host) are left out, not retried for ever
        plots = [(p, n) for p, n in ((rep.confusion_png, "confusion_matrix.png"), (rep.curve_png, "training_curve.png"))
                 if Path(p).is_file()]
        learning = [(rep.learning_curve_png, "learning_curve.png")] if rep.learning_curve_png else []
        files = [discord.File(p, filename=n) for p, n in plots + learning]
        note = f"\n⚠️ When it finished, {rep.not_posted}." if rep.not_posted else ""
        if len(plots) < 2:
            log.warning("job %s: its plots are not on this host (%s, %s); posting the result without them",
                        rep.job_id, rep.confusion_png, rep.curve_png)
            note += "\n(Its plots could not be attached: they are not stored on this server.)"
        confusion = "confusion_matrix.png" if any(n == "confusion_matrix.png" for _, n in plots) else None
        first = {"content": f"{mention} your model **{render.truncate(rep.name, 80)}** is ready.{note}",
                 "embed": render.result_embed(rep.job_id, rep.name, rep.version, m, confusion, rep.standing),
                 "files": files,
                 "allowed_mentions": render.only_pinging(rep.owner_id) if ping else discord.AllowedMentions.none()}
        report = f"Classification report (job {rep.job_id}, test split):\n{m['report_text']}"
        blocks = render.code_blocks(report)
        if len(blocks) > 2:  # a very long report goes as a file instead of many messages
            import io

            return [first, {"content": f"Classification report for job {rep.job_id}:",
                            "file": discord.File(io.BytesIO(report.encode()), filename=f"report-job-{rep.job_id}.txt"),
                            "allowed_mentions": discord.AllowedMentions.none()}]
        return [first] + [{"content": b, "allowed_mentions": discord.AllowedMentions.none()} for b in blocks]

    async def messages_for(self, row) -> list[dict]:
        """The messages one outbox row stands for, in order. A message with ``dm`` goes to that user
        directly instead of to the row's channel."""
        p = row.payload
        if row.kind == "assignment_revealed":
            return await self.reveal_messages(p["assignment_id"])
        mention = f"<@{p['owner_id']}>"
        name = render.truncate(p["name"], 80)
        if row.kind == "job_succeeded":
            rep = await self.bot.service.job_report(row.job_id)
            return [] if rep is None else self.report_messages(rep, mention)
        if row.kind == "job_failed":
            return [{"content": f"❌ {mention} job **{p['job_id']}** `{name}` failed: "
                                f"{render.truncate(p.get('error') or '', 1500)}\n{FAILED_HINT}",
                     "allowed_mentions": render.only_pinging(p["owner_id"])}]
        if row.kind == "experiment_finished":
            view = await self.bot.service.experiment_report(p["experiment_id"])
            if view is None:
                return []
            files = [discord.File(view.chart_png, filename=f"experiment-{view.id}.png")] if view.chart_png else []
            return [{"content": render.experiment_text(view, mention), "files": files,
                     "allowed_mentions": render.only_pinging(p["owner_id"])}]
        if row.kind == "job_cancelled":
            return [{"content": f"🚫 {mention} job **{p['job_id']}** `{name}` was cancelled.",
                     "allowed_mentions": render.only_pinging(p["owner_id"])}]
        return []

    async def reveal_messages(self, assignment_id: int) -> list[dict]:
        """An assignment's reveal: each student's own place by direct message (first, so a channel that
        refuses the post holds up nobody's place), then the final board's top three in the channel."""
        board = await self.bot.service.revealed_board(assignment_id)
        if board is None:
            return []
        channel, own = render.reveal_messages(board)
        none = discord.AllowedMentions.none()
        return ([{"dm": user, "content": text, "allowed_mentions": none} for user, text in own.items()]
                + [{"content": channel, "allowed_mentions": none}])

    async def deliver(self, row, part_sent) -> None:
        """Send one outbox row, skipping the messages an earlier try already sent and recording each one
        sent (``await part_sent(n)``). Raising leaves the rest for a retry. A direct message the user does
        not take (DMs closed: 403) is skipped: it would never go through."""
        if not row.channel_id and row.kind != "assignment_revealed":  # only a reveal also speaks by DM
            log.info("outbox %s: job %s has no channel (submitted from the command line)", row.id, row.job_id)
            return
        messages = await self.messages_for(row)
        for i in range(row.parts_sent, len(messages)):
            message = dict(messages[i])
            user_id = message.pop("dm", None)
            if user_id is not None:
                await self._direct(row, user_id, message)
            elif row.channel_id:
                await self.channel(row.channel_id).send(**message)
            else:
                log.info("outbox %s: the assignment has no channel (set from the command line); its post is "
                         "skipped", row.id)
            await part_sent(i + 1)

    async def _direct(self, row, user_id: str, message: dict) -> None:
        if not user_id.isdigit():  # a command-line user id, not a Discord account
            return
        try:
            user = await self.bot.fetch_user(int(user_id))
            await user.send(**message)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.info("outbox %s: %s does not take direct messages (%s); skipped", row.id, user_id, exc.status)

    async def tell_directly(self, row, error: str) -> None:
        """The channel refused a result for too long: tell the student once, by direct message."""
        p = row.payload
        user = await self.bot.fetch_user(int(p["owner_id"]))
        name = render.truncate(p["name"], 80)
        if row.kind == "assignment_revealed":
            what = (f"assignment **{name}** was revealed (each student has their place by direct message); "
                    f"`/leaderboard assignment:{name}` shows the final board")
        elif row.kind == "experiment_finished":
            what = (f"experiment **{p['experiment_id']}** `{name}` has finished; `/experiment show "
                    f"{p['experiment_id']}` shows its chart and table")
        else:
            outcome = {"job_succeeded": f"finished (macro-F1 {p.get('macro_f1', 0):.3f}); /report {p['job_id']} "
                                        "shows its report and plots",
                       "job_failed": f"failed: {render.truncate(p.get('error') or '', 1200)}",
                       "job_cancelled": "was cancelled"}.get(row.kind, row.kind)
            what = f"job **{p['job_id']}** `{name}` {outcome}"
        await user.send(f"Your TinyTutor {what}. I could not "
                        f"post this in <#{row.channel_id}> ({render.truncate(error, 200)}); ask your instructor to "
                        "let TinyTutor send messages there.")

    # -- progress --------------------------------------------------------------------------------
    async def update_progress(self) -> int:
        """Edit each job's progress message when its text changed; returns how many were edited.
        One job's message failing (deleted, channel locked, Discord briefly down) never holds up another's."""
        edited = 0
        for view, channel_id, message_id in await self.bot.service.progress_messages():
            text = render.progress_text(view, f"<@{view.owner_id}>")
            finished = view.status in ("succeeded", "failed", "cancelled")
            if self._last.get(view.id) != text:
                try:
                    await self.channel(channel_id).get_partial_message(int(message_id)).edit(
                        content=text, allowed_mentions=discord.AllowedMentions.none())
                    edited += 1
                    self._last[view.id] = text
                except (discord.NotFound, discord.Forbidden) as exc:  # deleted, or no longer ours to edit: stop
                    log.info("progress message of job %s can no longer be edited (%s); stopping its updates",
                             view.id, exc.status)
                    finished = True
                except discord.HTTPException as exc:  # 5xx and the like: try again next round
                    log.warning("progress message of job %s not edited (%s %s); will retry", view.id,
                                exc.status, exc.text)
                    continue
            if finished:
                await self.bot.service.forget_progress_message(view.id)
                self._last.pop(view.id, None)
        return edited
