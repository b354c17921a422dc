"""Dashboard sign-in: single-use links and revocable sessions, for instructors of one class.

A link carries a random nonce signed with the server's secret (``itsdangerous``, with a timestamp):
a forged or altered link fails the signature before the database is asked, an old one its age,
and the database keeps only the nonce's hash, marked used the first time it signs someone in. A
session is a random token in an HttpOnly cookie; the database keeps its hash, its expiry, whether it
was revoked, and the CSRF token its forms carry. Every request checks the session and that its user
is still recorded as an instructor of the class. The bot records the role at each command and when
Discord reports a member's roles changed (``record_role``); a page served on a role older than
``[web].role_check_minutes`` asks Discord again first (``role_check``, set by the bot), so an
instructor demoted in Discord loses every dashboard session within minutes, whatever they do.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from storage.models import INSTRUCTOR, STUDENT, Classroom, Member, WebLink, WebSession

from .base import ServiceBase
from .errors import PermissionDenied, ServiceError
from .views import Caller

LINK_SALT = "tinytutor-dashboard-link"
log = logging.getLogger("tinytutor.access")


class SignInRefused(ServiceError):
    """A sign-in link that is forged, expired or already used."""


@dataclass
class WebIdentity:
    """Who a dashboard request is from (``caller``) and the CSRF token its forms must carry."""

    caller: Caller
    csrf: str
    class_name: str


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def web_secret(settings) -> str:
    """The signing secret: the environment variable ``[web].secret_env`` names, else one kept in the data
    directory (created once, readable by its owner only), so the bot, ``tinytutor web`` and
    ``tinytutor web link`` on one machine agree. Never logged, never in config.toml."""
    value = os.environ.get(settings.web.secret_env, "").strip()
    if value:
        return value
    path = Path(settings.storage.data_dir) / "web-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".web-secret.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic, and never replaces: two processes starting at once agree on one secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


# (guild id, user id) -> whether Discord says that member is an instructor now; None: cannot tell now
RoleCheck = Callable[[str, str], Awaitable[bool | None]]


class Access(ServiceBase):
    role_check: RoleCheck | None = None  # set by the bot; the dashboard alone trusts the recorded roles

    def _signer(self):
        from itsdangerous import TimestampSigner, URLSafeTimedSerializer

        clock = self.clock

        class ClockedSigner(TimestampSigner):  # a link's age is told by the service's clock, as its row's is
            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        return URLSafeTimedSerializer(web_secret(self.settings), salt=LINK_SALT, signer=ClockedSigner)

    async def mint_link(self, caller: Caller) -> str:
        """A sign-in URL for the calling instructor and their class (``/dashboard``, ``tinytutor web link``)."""
        if not caller.instructor:
            raise PermissionDenied("Only instructors can open the dashboard.")
        nonce = secrets.token_urlsafe(24)
        async with self.db.transaction() as s:
            await self._member(s, caller)  # records the instructor role this link is checked against
            s.add(WebLink(nonce_sha256=_sha(nonce), guild_id=caller.guild_id, user_id=caller.user_id,
                          expires_at=self.clock() + timedelta(minutes=self.settings.web.link_minutes), created_at=self.clock()))
        token = self._signer().dumps(nonce)
        return f"{self.settings.web.base_url}/signin?token={token}"

    async def redeem_link(self, token: str) -> str:
        """Use a link once: a new session's cookie token. SignInRefused when forged, expired or used."""
        from itsdangerous import BadSignature, SignatureExpired

        try:
            nonce = self._signer().loads(token or "", max_age=self.settings.web.link_minutes * 60)
        except SignatureExpired:
            raise SignInRefused("This sign-in link has expired. Ask for a new one with /dashboard.") from None
        except BadSignature:
            raise SignInRefused("This is not a valid sign-in link. Ask for one with /dashboard.") from None
        now = self.clock()
        async with self.db.transaction() as s:
            link = (await s.execute(select(WebLink).where(WebLink.nonce_sha256 == _sha(str(nonce))))).scalar_one_or_none()
            if link is None:
                raise SignInRefused("This is not a valid sign-in link. Ask for one with /dashboard.")
            used = await s.execute(update(WebLink).where(WebLink.id == link.id, WebLink.used_at.is_(None),
                                                         WebLink.expires_at > now).values(used_at=now)
                                   .execution_options(synchronize_session=False))
            if used.rowcount != 1:
                raise SignInRefused("This sign-in link was already used or has expired; each link works once. "
                                    "Ask for a new one with /dashboard.")
            if not await self._is_instructor(s, link.guild_id, link.user_id):
                raise SignInRefused("You are no longer an instructor of this class.")
            token = secrets.token_urlsafe(32)
            s.add(WebSession(token_sha256=_sha(token), guild_id=link.guild_id, user_id=link.user_id,
                             csrf=secrets.token_urlsafe(24), created_at=now,
                             expires_at=now + timedelta(hours=self.settings.web.session_hours)))
        return token

    async def web_identity(self, token: str | None) -> WebIdentity | None:
        """The instructor a session cookie belongs to, or None (no session, expired, revoked, demoted)."""
        if not token:
            return None
        async with self.db.transaction() as s:
            row = (await s.execute(select(WebSession).where(WebSession.token_sha256 == _sha(token)))).scalar_one_or_none()
            if row is None or row.revoked_at is not None or row.expires_at <= self.clock():
                return None
            member = (await s.execute(select(Member).where(Member.guild_id == row.guild_id,
                                                           Member.user_id == row.user_id))).scalar_one_or_none()
            if member is None or member.role != INSTRUCTOR:
                return None
            cls = await s.get(Classroom, row.guild_id)
            identity = WebIdentity(Caller(row.guild_id, row.user_id, instructor=True, name=member.display_name),
                                   row.csrf, cls.name if cls else row.guild_id)
            checked = member.role_checked_at
        stale = checked is None or self.clock() - checked > timedelta(minutes=self.settings.web.role_check_minutes)
        if stale and self.role_check is not None:
            try:
                still = await self.role_check(row.guild_id, row.user_id)  # outside the transaction: a Discord call
            except Exception:  # Discord slow or down: the recorded role stands until the next page
                log.warning("could not re-check the role of %s in %s", row.user_id, row.guild_id, exc_info=True)
                still = None
            if still is not None:
                await self.record_role(row.guild_id, row.user_id, still)
                if not still:
                    return None
        return identity

    async def record_role(self, guild_id: str, user_id: str, instructor: bool) -> None:
        """What Discord says a member is now. An instructor who is one no more loses every dashboard session
        at once (a member not yet recorded is not added: their first command will do it)."""
        async with self.db.transaction() as s:
            await s.execute(update(Member).where(Member.guild_id == str(guild_id), Member.user_id == str(user_id))
                            .values(role=INSTRUCTOR if instructor else STUDENT, role_checked_at=self.clock())
                            .execution_options(synchronize_session=False))
        if not instructor:
            await self.revoke_sessions(str(guild_id), str(user_id))

    async def end_session(self, token: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(update(WebSession).where(WebSession.token_sha256 == _sha(token),
                                                     WebSession.revoked_at.is_(None)).values(revoked_at=self.clock()))

    async def revoke_sessions(self, guild_id: str, user_id: str | None = None) -> int:
        """Sign out every dashboard session of a class (or of one of its instructors). Returns how many."""
        cond = [WebSession.guild_id == guild_id, WebSession.revoked_at.is_(None)]
        if user_id:
            cond.append(WebSession.user_id == user_id)
        async with self.db.transaction() as s:
            result = await s.execute(update(WebSession).where(*cond).values(revoked_at=self.clock())
                                     .execution_options(synchronize_session=False))
            return result.rowcount

    async def _is_instructor(self, s, guild_id: str, user_id: str) -> bool:
        role = (await s.execute(select(Member.role).where(Member.guild_id == guild_id, Member.user_id == user_id)
                                )).scalar_one_or_none()
        return role == INSTRUCTOR


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens (a CSRF token against the session's)."""
    # as bytes: compare_digest refuses str with characters outside ASCII (a forged form field)
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
