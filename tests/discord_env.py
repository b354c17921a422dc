"""The Discord test environment: the real bot, logged in against the fake Discord (``env`` fixture,
available to every test through conftest), and what must hold for every message it sent."""

from __future__ import annotations

import json
import re

import discord
import pytest
from fake_discord import ATTACHMENT, CHANNEL_ID, GUILD_ID, FakeDiscord, User, option, snowflake
from helpers import free_port, fresh_database

from bot.app import create_bot


class Env:
    def __init__(self, bot, fake: FakeDiscord):
        self.bot, self.fake = bot, fake

    def send(self, user: User, name: str, options=(), sub: str | None = None, attachments=(), type_: int = 1,
             target: dict | None = None, guild_id: int = GUILD_ID) -> dict:
        data = {"id": str(snowflake()), "name": name, "type": type_, "guild_id": str(guild_id),
                "options": [{"name": sub, "type": 1, "options": list(options)}] if sub else list(options)}
        resolved = {}
        if attachments:
            resolved["attachments"] = {a["id"]: a for a in attachments}
        if target is not None:
            data["target_id"] = target["id"]
            resolved["messages"] = {target["id"]: target}
        if resolved:
            data["resolved"] = resolved
        payload = self.fake.interaction(user, data, guild_id=guild_id)
        self.bot._connection.parse_interaction_create(payload)
        return payload

    async def run(self, user: User, name: str, options=(), *, messages: int = 1, **kw):
        """Send a command and wait for its answer: the callback, plus ``messages`` follow-ups when deferred."""
        payload = self.send(user, name, options, **kw)

        def settled():
            calls = self.fake.calls_for(payload)
            cb = [c for c in calls if c.path.endswith("/callback")]
            if not cb:
                return None
            if cb[0].json["type"] != 5:
                return calls
            follow = [c for c in calls if c.path.startswith("/webhooks") and c.method == "POST"]
            return calls if len(follow) >= messages else None

        return await self.fake.wait(settled, what=f"/{name}")

    def channel_posts(self) -> list:
        return [c for c in self.fake.calls if c.method == "POST" and c.path == f"/channels/{CHANNEL_ID}/messages"]

    def attachment_option(self, name: str, filename: str, content: bytes):
        att = self.fake.attach(filename, content)
        return option(name, ATTACHMENT, att["id"]), att


@pytest.fixture
async def env(request, tmp_path, settings_for, monkeypatch):
    """The bot, logged in to a fake Discord. ``@pytest.mark.settings(web={"enabled": True})`` gives the
    bot other settings (sections as ``settings_for`` takes them)."""
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.base}/api/v10")
    marker = request.node.get_closest_marker("settings")
    changes = dict(marker.kwargs) if marker else {}
    discord_keys = {"guild_id": str(GUILD_ID), "instructor_role_id": "555", "progress_edit_seconds": 0.2,
                    "outbox_seconds": 0.2, "max_upload_bytes": 200_000} | changes.pop("discord", {})
    if changes.get("web", {}).get("enabled") and "port" not in changes["web"]:
        changes["web"] = changes["web"] | {"port": free_port()}  # the dashboard this bot serves
    # a test parametrized over ``bot_database`` runs the bot on each (SQLite otherwise)
    kind = getattr(request.node, "callspec", None) and request.node.callspec.params.get("bot_database")
    async with fresh_database(kind or "sqlite", tmp_path) as url:
        bot = create_bot(settings_for(url, discord=discord_keys, **changes))
        await bot.login("fake-token")
        yield Env(bot, fake)
        await bot.close()
        await fake.stop()
    assert_sent_safely(fake)


CLI_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def assert_sent_safely(fake: FakeDiscord) -> None:
    """What holds for every message the bot sent in a test: it pinged nobody but (at most) one user, and
    named no command-line flag (students in Discord have none)."""
    for c in fake.calls:
        if c.method not in ("POST", "PATCH") or c.path.endswith("/commands"):
            continue
        assert not {p for p in c.pings if not p.startswith("user:")}, (c.path, c.content, c.pings)
        assert len(c.pings) <= 1, (c.path, c.content, c.pings)
        shown = c.content + json.dumps(c.data.get("embeds") or [])
        assert not CLI_FLAG.search(shown), (c.path, CLI_FLAG.search(shown).group(), shown)
