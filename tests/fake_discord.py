"""A fake Discord on 127.0.0.1 for driving the real bot through discord.py's real code path.

An aiohttp server answers the REST routes the bot uses (login, application info, command sync,
interaction callbacks, webhook follow-ups and edits, channel messages and edits, attachment
downloads) and records every request, multipart files included. ``interact`` builds an
INTERACTION_CREATE payload and hands it to the bot's gateway parser, as the gateway would.

Two details that matter: discord.py reads a body as JSON only when Content-Type is exactly
``application/json``; and it does not enforce option ranges (Discord's client does), so tests
build valid payloads and the bot re-checks what matters.

It behaves like Discord where the bot could get it wrong:
- after a deferred response, the first follow-up (or an edit of the original) becomes the "thinking"
  message and keeps the defer's visibility, whatever flags it sends; later follow-ups choose their own
  (``Call.ephemeral`` is what the user sees, ``Call.asked_ephemeral`` what the bot asked for);
- mentions ping what ``allowed_mentions`` allows, and everything when it is absent (``Call.pings``);
  mentions inside code blocks never ping;
- a second acknowledgement of an interaction fails (40060), a first one after 3 s fails (10062);
- ``fail(...)`` makes matching requests answer 403, 404, 429 (with ``retry_after``) or 5xx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GUILD_ID = 910000000000000001
CHANNEL_ID = 920000000000000001
DM_CHANNEL_ID = 920000000000000099
MANAGE_GUILD = 1 << 5

_ids = itertools.count(930000000000000001)


def snowflake() -> int:
    return next(_ids)


def user_json(uid: int, name: str, bot: bool = False) -> dict:
    return {"id": str(uid), "username": name, "global_name": name, "discriminator": "0", "avatar": None,
            "bot": bot, "public_flags": 0}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Call:
    """One request the bot made."""

    method: str
    path: str
    json: dict | list | None
    files: dict[str, bytes] = field(default_factory=dict)  # filename -> bytes
    query: dict = field(default_factory=dict)
    status: int = 200  # what the fake answered
    shown_ephemeral: bool | None = None  # set for a deferred interaction's first follow-up
    pings: frozenset[str] = frozenset()  # "user:ID", "role:ID", "everyone" that this message notified
    message_id: str | None = None  # the message a channel POST created

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def data(self) -> dict:
        """The message part: callbacks wrap it in {"type", "data"}."""
        if isinstance(self.json, dict) and "type" in self.json and "data" in self.json:
            return self.json["data"] or {}
        return self.json if isinstance(self.json, dict) else {}

    @property
    def asked_ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & 64)

    @property
    def ephemeral(self) -> bool:
        """Whether only the user sees it, as Discord decides."""
        return self.asked_ephemeral if self.shown_ephemeral is None else self.shown_ephemeral


@dataclass
class Fault:
    method: str
    path: str  # a regular expression matched against the request path
    status: int
    code: int = 0
    times: int = 1  # how many matching requests fail; -1: all
    after: int = 0  # let this many matching requests through first


def pings_of(data: dict) -> frozenset[str]:
    """What a message notifies, as Discord decides: mentions in its content (not in code), filtered by
    ``allowed_mentions``; without ``allowed_mentions`` every mention pings."""
    content = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", data.get("content") or "", flags=re.S))
    am = data.get("allowed_mentions")
    parse = {"users", "roles", "everyone"} if am is None else set(am.get("parse", []))
    users = {str(u) for u in (am or {}).get("users", [])}
    roles = {str(r) for r in (am or {}).get("roles", [])}
    out = {f"user:{u}" for u in re.findall(r"<@!?(\d+)>", content) if "users" in parse or u in users}
    out |= {f"role:{r}" for r in re.findall(r"<@&(\d+)>", content) if "roles" in parse or r in roles}
    if re.search(r"@(everyone|here)", content) and "everyone" in parse:
        out.add("everyone")
    return frozenset(out)


@dataclass
class User:
    id: int
    name: str
    manage_guild: bool = False
    roles: tuple[int, ...] = ()


class FakeDiscord:
    def __init__(self):
        self.calls: list[Call] = []
        self.attachments: dict[str, bytes] = {}
        self.attachment_gets: list[str] = []
        self.messages: dict[int, dict] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""
        self.gateway_ws: web.WebSocketResponse | None = None
        self.identified = asyncio.Event()
        self._seq = 0
        self.faults: list[Fault] = []
        self.deferred: dict[str, bool] = {}  # token -> the defer's ephemeral flag, until its first follow-up
        self.acknowledged: set[str] = set()
        self.created: dict[str, float] = {}  # interaction id -> when it was sent
        self.left_guilds: list[str] = []  # servers the bot left
        self.members: dict[tuple[int, int], tuple[int, ...]] = {}  # (server, user) -> role ids, for member lookups
        self.dm_channels: dict[int, int] = {}  # user -> their direct-message channel (the first opened is DM_CHANNEL_ID)

    def dms(self, user_id: int) -> list[Call]:
        """The direct messages the bot sent to ``user_id`` (posts to their DM channel that went through)."""
        channel = self.dm_channels.get(int(user_id))
        return [c for c in self.calls if channel is not None and c.method == "POST" and c.status == 200
                and c.path == f"/channels/{channel}/messages"]

    def fail(self, method: str, path: str, status: int, code: int = 0, times: int = 1, after: int = 0) -> Fault:
        """Make ``times`` requests matching ``method`` and the ``path`` pattern fail with ``status``, after
        letting ``after`` of them through."""
        fault = Fault(method, path, status, code, times, after)
        self.faults.append(fault)
        return fault

    def _fault(self, method: str, path: str) -> web.Response | None:
        for f in self.faults:
            if f.times and f.method == method and re.search(f.path, path):
                if f.after:
                    f.after -= 1
                    continue
                f.times -= 1
                body = {"message": {403: "Missing Access", 404: "Unknown Channel", 429: "You are being rate limited."}
                        .get(f.status, "Server error"), "code": f.code or {403: 50001, 404: 10003}.get(f.status, 0)}
                headers = {"Content-Type": "application/json"}
                if f.status == 429:
                    body |= {"retry_after": 0.05, "global": False}
                    headers |= {"Retry-After": "0.05", "X-RateLimit-Scope": "user"}
                return web.Response(status=f.status, body=json.dumps(body).encode(), headers=headers)
        return None

    # -- server ------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.api)
        app.router.add_get("/attachments/{name}", self.attachment)
        app.router.add_get("/gateway", self.gateway)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @staticmethod
    def reply(data, status: int = 200) -> web.Response:
        if data is None:
            return web.Response(status=204)
        return web.Response(status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})

    async def attachment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.attachment_gets.append(name)
        return web.Response(body=self.attachments[name], headers={"Content-Type": "application/octet-stream"})

    async def _read(self, request: web.Request) -> tuple[dict | list | None, dict[str, bytes]]:
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            payload, files = None, {}
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    files[part.filename] = await part.read()
            return payload, files
        body = await request.read()
        return (json.loads(body) if body else None), {}

    def message(self, channel_id: int, data: dict, files: dict[str, bytes], mid: int | None = None) -> dict:
        mid = mid or snowflake()
        msg = {
            "id": str(mid), "channel_id": str(channel_id), "guild_id": str(GUILD_ID),
            "author": user_json(BOT_ID, "TinyTutor", bot=True), "content": data.get("content") or "",
            "timestamp": now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [
                {"id": str(snowflake()), "filename": n, "size": len(b), "url": f"{self.base}/attachments/{n}",
                 "proxy_url": f"{self.base}/attachments/{n}"} for n, b in files.items()],
            "embeds": data.get("embeds") or [], "pinned": False, "type": 0, "flags": data.get("flags", 0),
            "components": data.get("components") or [],
        }
        self.messages[mid] = msg
        return msg

    async def api(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        payload, files = await self._read(request)
        call = Call(request.method, path, payload, files, dict(request.query))
        self.calls.append(call)
        parts = path.strip("/").split("/")
        m = request.method
        fault = self._fault(m, path)
        if fault is not None:
            call.status = fault.status
            return fault
        if m in ("POST", "PATCH") and isinstance(payload, dict):
            call.pings = pings_of(call.data)
        if path == "/gateway/bot":
            return self.reply({"url": self.base.replace("http://", "ws://") + "/gateway", "shards": 1,
                               "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0,
                                                       "max_concurrency": 1}})
        if path == "/users/@me":
            return self.reply(user_json(BOT_ID, "TinyTutor", bot=True))
        if path == "/users/@me/channels" and m == "POST":  # open a direct message channel: one per user
            user = int(payload["recipient_id"])
            channel = self.dm_channels.setdefault(user, DM_CHANNEL_ID + len(self.dm_channels))
            return self.reply({"id": str(channel), "type": 1, "last_message_id": None,
                               "recipients": [user_json(user, f"user{user}")]})
        if parts[:3] == ["users", "@me", "guilds"] and len(parts) == 4 and m == "DELETE":  # leave a server
            self.left_guilds.append(parts[3])
            return self.reply(None)
        if parts[0] == "guilds" and parts[2:3] == ["members"] and len(parts) == 4 and m == "GET":
            roles = self.members.get((int(parts[1]), int(parts[3])))
            if roles is None:
                call.status = 404
                return self.reply({"message": "Unknown Member", "code": 10007}, 404)
            return self.reply({"user": user_json(int(parts[3]), f"user{parts[3]}"), "roles": [str(r) for r in roles],
                               "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0})
        if parts[0] == "users" and len(parts) == 2 and m == "GET":
            return self.reply(user_json(int(parts[1]), f"user{parts[1]}"))
        if path == "/oauth2/applications/@me":
            return self.reply({"id": str(APP_ID), "name": "TinyTutor", "description": "", "icon": None,
                               "bot_public": False, "bot_require_code_grant": False,
                               "owner": user_json(1, "owner"), "verify_key": "0" * 64, "flags": 0})
        if parts[0] == "applications" and parts[-1] == "commands" and m == "PUT":
            too_long = _over_command_limits(payload)
            if too_long:  # Discord refuses the whole sync
                return self.reply({"code": 50035, "message": "Invalid Form Body",
                                   "errors": {too_long: {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH",
                                                                      "message": "Must be between 1 and 100 in length."}]}}},
                                  status=400)
            return self.reply([{**c, "id": str(snowflake()), "application_id": str(APP_ID), "version": "1",
                                "default_member_permissions": c.get("default_member_permissions"),
                                "description": c.get("description", "")} for c in payload])
        if parts[0] == "interactions" and parts[-1] == "callback":
            kind = payload["type"]
            if parts[1] in self.acknowledged:
                call.status = 400
                return self.reply({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
            if time.monotonic() - self.created.get(parts[1], time.monotonic()) > 3:
                call.status = 404
                return self.reply({"message": "Unknown interaction", "code": 10062}, 404)
            self.acknowledged.add(parts[1])
            if kind == 5:
                self.deferred[parts[2]] = call.asked_ephemeral
            msg = None
            if kind in (4, 7) or (kind == 5):
                msg = self.message(CHANNEL_ID, payload.get("data") or {}, files)
            return self.reply({"interaction": {"id": parts[1], "type": 2, "response_message_id": msg and msg["id"],
                                               "response_message_loading": kind == 5,
                                               "response_message_ephemeral": bool((payload.get("data") or {}).get("flags", 0) & 64)},
                               "resource": {"type": kind, "message": msg} if msg else None})
        if parts[0] == "webhooks":
            token = parts[2]
            if m in ("POST", "PATCH") and token in self.deferred and (m == "POST" or parts[-1] == "@original"):
                call.shown_ephemeral = self.deferred.pop(token)  # it replaces the "thinking" message
            if m == "POST":
                return self.reply(self.message(CHANNEL_ID, payload or {}, files))
            if m == "PATCH":
                mid = parts[-1]
                return self.reply(self.message(CHANNEL_ID, payload or {}, files, None if mid == "@original" else int(mid)))
            if m == "GET":
                return self.reply(self.message(CHANNEL_ID, {}, {}))
            return self.reply(None)
        if parts[0] == "channels" and parts[2:3] == ["messages"]:
            channel = int(parts[1])
            if m == "POST":
                msg = self.message(channel, payload or {}, files)
                call.message_id = msg["id"]
                return self.reply(msg)
            if m == "PATCH":
                return self.reply(self.message(channel, payload or {}, files, int(parts[3])))
        return self.reply({"message": f"fake Discord has no route {m} {path}", "code": 0}, status=404)

    # -- the gateway (one smoke test): plain-text JSON frames, which discord.py reads uncompressed ------
    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        async for msg in ws:
            data = json.loads(msg.data)
            if data["op"] == 1:  # heartbeat
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif data["op"] == 2:  # identify
                self.identify = data["d"]
                await self.dispatch("READY", {
                    "v": 10, "user": user_json(BOT_ID, "TinyTutor", bot=True), "guilds": [], "session_id": "fake",
                    "resume_gateway_url": self.base.replace("http://", "ws://") + "/gateway", "shard": [0, 1],
                    "application": {"id": str(APP_ID), "flags": 0}})
                self.identified.set()
        return ws

    async def dispatch(self, event: str, data: dict) -> None:
        self._seq += 1
        await self.gateway_ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    # -- driving the bot ---------------------------------------------------------------------------
    def attach(self, filename: str, content: bytes) -> dict:
        """An attachment served by this server, as Discord resolves it in an interaction."""
        name = f"{snowflake()}-{filename}"
        self.attachments[name] = content
        return {"id": str(snowflake()), "filename": filename, "size": len(content),
                "url": f"{self.base}/attachments/{name}", "proxy_url": f"{self.base}/attachments/{name}",
                "content_type": "text/csv"}

    def interaction(self, user: User, data: dict, type_: int = 2, message: dict | None = None,
                    guild_id: int = GUILD_ID) -> dict:
        payload = {
            "id": str(snowflake()), "application_id": str(APP_ID), "type": type_, "data": data,
            "guild_id": str(guild_id), "channel_id": str(CHANNEL_ID),
            "channel": {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(guild_id), "name": "class",
                        "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None},
            "member": {"user": user_json(user.id, user.name), "roles": [str(r) for r in user.roles],
                       "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0,
                       "permissions": str(MANAGE_GUILD if user.manage_guild else 0)},
            "token": f"token-{snowflake()}", "version": 1, "app_permissions": "0", "locale": "en-US",
            "guild_locale": "en-US", "entitlements": [], "authorizing_integration_owners": {}, "context": 0,
            "attachment_size_limit": 25 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        self.created[payload["id"]] = time.monotonic()
        return payload

    def guild(self, guild_id: int = GUILD_ID, manage_role: int = 0, owner_id: int = 1) -> dict:
        """A server as the gateway's GUILD_CREATE describes it: @everyone without permissions and, if given,
        a role with Manage Server."""
        def role(rid, name, perms, pos):
            return {"id": str(rid), "name": name, "permissions": str(perms), "position": pos, "color": 0,
                    "hoist": False, "managed": False, "mentionable": False, "flags": 0}

        roles = [role(guild_id, "@everyone", 0, 0)] + ([role(manage_role, "admins", MANAGE_GUILD, 1)]
                                                       if manage_role else [])
        return {"id": str(guild_id), "name": "class", "owner_id": str(owner_id), "roles": roles, "emojis": [],
                "stickers": [], "features": [], "member_count": len(self.members), "channels": [], "members": [],
                "threads": [], "voice_states": [], "presences": [], "large": False, "unavailable": False,
                "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
                "mfa_level": 0, "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0}

    def calls_for(self, payload: dict) -> list[Call]:
        """The callback and follow-ups of one interaction (its id and token appear in the paths)."""
        return [c for c in self.calls if payload["id"] in c.path or payload["token"] in c.path]

    async def wait(self, predicate, timeout: float = 30, what: str = "the bot"):
        """helpers.wait_for, naming the last calls the bot made when it times out."""
        from helpers import wait_for

        try:
            return await wait_for(predicate, timeout, every=0.05, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; calls: {[(c.method, c.path) for c in self.calls[-10:]]}") from None


def option(name: str, type_: int, value) -> dict:
    return {"name": name, "type": type_, "value": value}


STRING, INTEGER, BOOLEAN, ATTACHMENT, NUMBER, SUB_COMMAND = 3, 4, 5, 11, 10, 1


def _over_command_limits(commands: list[dict]) -> str | None:
    """The path of the first name (1-32 characters) or description (1-100) Discord would refuse, if any."""
    def walk(items, where):
        for i, c in enumerate(items or []):
            here = f"{where}.{i}"
            if not 1 <= len(c.get("name", "")) <= 32:
                return f"{here}.name"
            described = c.get("type", 1) == 1 or where != ""  # context menus (types 2, 3) have none
            if described and not 1 <= len(c.get("description", "")) <= 100:
                return f"{here}.description"
            bad = walk(c.get("options"), f"{here}.options")
            if bad:
                return bad
        return None

    return walk(commands, "")
