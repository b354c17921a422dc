"""The Discord bot: ``create_bot(settings)`` returns it configured, not started.

``setup_hook`` (run by ``login``) opens the database (upgrading it), adds the cogs, syncs the
commands (to each server it serves, ``[discord].guild_id`` and ``allowed_guilds``, else globally),
and starts the scheduler, the outbox pump and the progress editor on the runtime's periodic tasks,
and the dashboard when ``[web].enabled``; ``close`` stops them all. Interactions from any other
server are refused in ``cogs._common.TutorTree``; role changes (with ``[discord].members_intent``)
and the dashboard's re-checks of stale roles are answered here.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import discord
from discord.ext import commands

from service.runtime import Runtime

from .announcer import Announcer, refused
from .cogs._common import TutorTree, member_is_instructor

log = logging.getLogger("tinytutor.bot")


class TinyTutorBot(commands.Bot):
    def __init__(self, settings, runtime: Runtime | None = None):
        # Slash commands, buttons and context menus need no privileged intents.
        intents = discord.Intents.none()
        intents.guilds = True  # not privileged; keeps discord.py's guild state sane
        # privileged, off unless configured: members' role changes as they happen (a demoted instructor's
        # dashboard sessions end at once; without it, at their next page after [web].role_check_minutes)
        intents.members = settings.discord.members_intent
        # No message pings anyone unless it says so: the student a message is for, nobody else (a model
        # named "@everyone news" or a label "<@&role>" is only text).
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, tree_cls=TutorTree,
                         help_command=None, allowed_mentions=discord.AllowedMentions.none())
        self.settings = settings
        self.runtime = runtime
        self.announcer = Announcer(self)
        self.outbox = None  # the outbox pump (Runtime.outbox), from setup_hook on
        self.synced: list = []
        self.web = None  # the dashboard's runner, when [web].enabled

    @property
    def service(self):
        return self.runtime.service

    async def setup_hook(self) -> None:
        from .cogs.assignments import Assignments
        from .cogs.experiments import Experiments
        from .cogs.instructors import CancelJobButton, Instructors, QueuePageButton
        from .cogs.students import Students

        if self.runtime is None:
            self.runtime = await Runtime.open(self.settings)
        await self.add_cog(Students(self))
        await self.add_cog(Instructors(self))
        await self.add_cog(Assignments(self))
        await self.add_cog(Experiments(self))
        self.add_dynamic_items(CancelJobButton, QueuePageButton)
        servers = self.settings.discord.servers
        for guild_id in servers:  # instant, and only there
            guild = discord.Object(id=int(guild_id))
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            self.synced = self.synced or synced
            log.info("synced %d commands to server %s", len(synced), guild_id)
        if not servers:
            self.synced = await self.tree.sync()
            log.warning("synced %d commands globally: any server that invites the bot can use it (set "
                        "[discord].guild_id or allowed_guilds to serve only your class)", len(self.synced))
        self.runtime.service.role_check = self.still_instructor  # the dashboard re-checks stale roles with it
        # the scheduler, the outbox pump and the progress editor share the process's periodic tasks
        await self.runtime.start_jobs()
        self.outbox = self.runtime.outbox(self.announcer.deliver, refused=refused,
                                          undeliverable=self.announcer.tell_directly,
                                          give_up_after=timedelta(minutes=self.settings.discord.give_up_minutes))
        self.outbox.start(self.runtime.periodic, self.settings.discord.outbox_seconds)
        self.runtime.periodic.every(self.settings.discord.progress_edit_seconds, self._progress_round, "progress")
        if self.settings.web.enabled:  # the dashboard, in this event loop
            from web.app import make_app, start_site

            web = self.settings.web
            self.web = await start_site(make_app(self.runtime.service, self.settings), web.host, web.port)
            log.info("dashboard at %s (listening on %s:%d)", web.base_url, web.host, web.port)

    async def still_instructor(self, guild_id: str, user_id: str) -> bool | None:
        """Whether Discord says this member is an instructor now (asked over REST, no privileged intent);
        None when it cannot tell now (the server not in this bot's cache, or Discord unavailable)."""
        guild = self.get_guild(int(guild_id))
        if guild is None:
            return None
        try:
            member = await guild.fetch_member(int(user_id))
        except discord.NotFound:
            return False  # they left the server
        except discord.HTTPException:
            log.warning("could not re-check the role of user %s in server %s", user_id, guild_id, exc_info=True)
            return None
        return member_is_instructor(member, self.settings)

    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        """Only with [discord].members_intent: a role change recorded at once."""
        now = member_is_instructor(after, self.settings)
        if now != member_is_instructor(before, self.settings):
            await self.service.record_role(str(after.guild.id), str(after.id), now)

    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        await self.service.record_role(str(payload.guild_id), str(payload.user.id), False)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if not self.settings.discord.serves(guild.id):
            log.warning("invited to server %s (%s), which is not in [discord].allowed_guilds%s", guild.id, guild.name,
                        "; leaving it" if self.settings.discord.leave_other_guilds else "")
            if self.settings.discord.leave_other_guilds:
                await guild.leave()

    async def _progress_round(self) -> None:
        try:
            await self.announcer.update_progress()
        except Exception:  # Discord or the database briefly unavailable: try again next round
            log.exception("progress update failed")

    async def close(self) -> None:
        if self.web is not None:
            await self.web.cleanup()
            self.web = None
        if self.runtime is not None:
            await self.runtime.close()
        await super().close()


def create_bot(settings, runtime: Runtime | None = None) -> TinyTutorBot:
    """The configured bot, not started: ``await bot.login(token)`` runs ``setup_hook``."""
    return TinyTutorBot(settings, runtime)
