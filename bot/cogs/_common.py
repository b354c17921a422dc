"""What every cog needs: who is asking, reading attachments within the limit, answering errors."""

from __future__ import annotations

import logging
import uuid

import discord
from discord import app_commands

from service import Caller
from service.errors import InvalidRequest, ServiceError

from .. import render

log = logging.getLogger("tinytutor.bot")


class NotInstructor(app_commands.CheckFailure):
    """Raised by the instructor cog's check; the message says who counts as an instructor."""


def is_instructor(interaction: discord.Interaction, settings) -> bool:
    """Manage Server, or the configured instructor role (checked in code, not only as a client hint)."""
    # Member.roles needs the guild cache (no gateway intents here); the interaction carries the role ids.
    return _instructor(interaction.permissions, getattr(interaction.user, "_roles", ()), settings)


def member_is_instructor(member: discord.Member, settings) -> bool:
    """The same rule for a member Discord reports (a role change, or fetched to re-check a dashboard
    session): their permissions come from the cached server's roles."""
    return _instructor(member.guild_permissions, member._roles, settings)


def _instructor(permissions: discord.Permissions, role_ids, settings) -> bool:
    if permissions.manage_guild:
        return True
    role = settings.discord.instructor_role_id
    return bool(role) and int(role) in role_ids


class OtherServer(InvalidRequest):
    """An interaction from a server the bot does not serve ([discord].allowed_guilds)."""


def check_server(interaction: discord.Interaction, settings) -> None:
    if interaction.guild_id is None:
        raise InvalidRequest("TinyTutor works inside your class's server, not in direct messages.")
    if not settings.discord.serves(interaction.guild_id):
        raise OtherServer("TinyTutor is not set up for this server, so nothing here was stored. Whoever runs the "
                          "bot can add this server's id to `allowed_guilds` in its configuration.")


def caller_of(interaction: discord.Interaction, settings) -> Caller:
    check_server(interaction, settings)
    return Caller(str(interaction.guild_id), str(interaction.user.id), is_instructor(interaction, settings),
                  interaction.user.display_name)


async def read_attachment(attachment: discord.Attachment, settings) -> bytes:
    """The attachment's bytes; refused before download when it is over the configured size."""
    check_size(attachment, settings)
    return await attachment.read()


def check_size(attachment: discord.Attachment | None, settings) -> None:
    if attachment is not None and attachment.size > settings.discord.max_upload_bytes:
        raise InvalidRequest(f"`{attachment.filename}` is {attachment.size:,} bytes; uploads are limited to "
                             f"{settings.discord.max_upload_bytes:,} bytes. Upload a sample of your data.")


async def defer_public(interaction: discord.Interaction) -> None:
    """Defer a command whose answer the channel sees. Discord shows the first follow-up with the defer's
    visibility, so a refusal after this must first replace the public "thinking" message (send_ephemeral
    does) before it can be private."""
    await interaction.response.defer(thinking=True)
    interaction.extras["public_thinking"] = True


async def send_public(interaction: discord.Interaction, **kwargs) -> None:
    """The public answer to a command deferred with ``defer_public``."""
    interaction.extras.pop("public_thinking", None)
    await interaction.followup.send(**kwargs)


async def send_ephemeral(interaction: discord.Interaction, text: str, **kwargs) -> None:
    """Answer privately, whether or not the interaction was already acknowledged (publicly or not); long
    text is split."""
    if interaction.extras.pop("public_thinking", False):
        await interaction.edit_original_response(content="⚠️ No answer here: the reason was sent privately.",
                                                 allowed_mentions=discord.AllowedMentions.none())
    chunks = render.split_text(text)
    for i, chunk in enumerate(chunks):
        extra = kwargs if i == len(chunks) - 1 else {}
        if not interaction.response.is_done():
            await interaction.response.send_message(chunk, ephemeral=True, **extra)
        else:
            await interaction.followup.send(chunk, ephemeral=True, **extra)


async def report_error(interaction: discord.Interaction, error: Exception) -> None:
    """The one error handler: domain errors become clear private messages; anything else is logged
    with an id the student can quote."""
    original = getattr(error, "original", error)  # CommandInvokeError wraps what the command raised
    if isinstance(original, ServiceError | app_commands.CheckFailure):
        text = str(original) or "You cannot use this command here."
    else:
        error_id = uuid.uuid4().hex[:8]
        name = interaction.command.qualified_name if interaction.command else "interaction"
        log.error("error %s in /%s (guild %s, user %s)", error_id, name, interaction.guild_id, interaction.user.id,
                  exc_info=original)
        text = (f"Something went wrong on our side (error id `{error_id}`). It has been logged; tell your "
                "instructor the id if it keeps happening.")
    try:
        await send_ephemeral(interaction, text)
    except discord.HTTPException:
        log.exception("could not send the error message for interaction %s", interaction.id)


class TutorTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every command, context menu and autocomplete: only from the servers the bot serves. Another
        server's gets a plain private answer (autocomplete: no choices) and nothing else runs, so its first
        command creates no class; with [discord].leave_other_guilds the bot then leaves that server."""
        settings = interaction.client.settings
        try:
            check_server(interaction, settings)
        except OtherServer as refused:
            log.warning("refused an interaction from server %s (not in [discord].allowed_guilds)",
                        interaction.guild_id)
            if interaction.type is discord.InteractionType.application_command:
                await report_error(interaction, refused)
            if settings.discord.leave_other_guilds:
                try:
                    await interaction.client.http.leave_guild(interaction.guild_id)
                except discord.HTTPException:
                    log.exception("could not leave server %s", interaction.guild_id)
            return False
        except InvalidRequest:
            pass  # a direct message: the command's own caller_of answers it
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await report_error(interaction, error)


def model_id(value: str | None) -> int | None:
    """A model option: the id autocomplete filled in, or a typed number."""
    if value is None or value == "":
        return None
    value = value.strip().lstrip("#")
    if not value.isdigit():
        raise InvalidRequest(f"'{value}' is not a model: pick one from the list (it fills in the model's number).")
    return int(value)


async def model_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    bot = interaction.client
    try:
        models = await bot.service.models(caller_of(interaction, bot.settings))
    except ServiceError:
        return []
    current = current.lower()
    out = []
    for m in models:
        label = f"{m.label} · macro-F1 {m.metrics.get('macro_f1', 0):.2f}" + (" ⭐" if m.is_default else "")
        if m.owner_id != str(interaction.user.id):
            label += " (shared)"
        if current in label.lower() or current == str(m.id):
            out.append(app_commands.Choice(name=render.truncate(label, 100), value=str(m.id)))
    return out[:25]
