"""Sessions: a random token in the cookie (or bearer header), only its SHA-256 in the
database, an idle timeout and an absolute lifetime enforced where the session is
resolved, so an ended session can never act again."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from perpetua.access.claims import Claims, Role
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.errors import NotAuthenticated, SessionExpired

TOKEN_BYTES = 32


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class Principal:
    """The signed-in identity a request acts as."""

    user_id: uuid.UUID
    user_kind: str
    practice_id: uuid.UUID | None
    role: Role | None
    token_hash: bytes

    def claims(
        self, request_id: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> Claims:
        return Claims(
            actor_kind="staff" if self.user_kind == "staff" else "user",
            actor_id=self.user_id,
            request_id=request_id,
            practice_id=self.practice_id if self.role else None,
            practice_role=self.role,
            client_ip=ip,
            user_agent=user_agent,
        )


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta = dt.timedelta(minutes=15)
    absolute: dt.timedelta = dt.timedelta(hours=12)


async def start_session(
    db: Database,
    clock: Clock,
    policy: SessionPolicy,
    *,
    user_id: uuid.UUID,
    practice_id: uuid.UUID | None,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """Create a session and return its token; the token is never stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_create(%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                token_hash(token),
                user_id,
                practice_id,
                clock.now(),
                int(policy.idle.total_seconds()),
                int(policy.absolute.total_seconds()),
                ip,
                user_agent,
            ),
        )
    return token


async def resolve_session(db: Database, clock: Clock, token: str | None) -> Principal:
    if not token or len(token) > 200:
        raise NotAuthenticated()
    digest = token_hash(token)
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.session_resolve(%s, %s)", (digest, clock.now())
        )
        row = await cur.fetchone()
    if row is None:
        raise NotAuthenticated()
    if row["ended_reason"]:
        raise SessionExpired()
    return Principal(
        user_id=row["user_id"],
        user_kind=row["user_kind"],
        practice_id=row["practice_id"],
        role=row["practice_role"],
        token_hash=digest,
    )


async def end_session(
    db: Database, clock: Clock, principal: Principal, reason: str = "signed_out"
) -> None:
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_end(%s, %s, %s)",
            (principal.token_hash, clock.now(), reason),
        )


async def purge_ended_sessions(db: Database, clock: Clock) -> int:
    async with db.transaction(None) as conn:
        cur = await conn.execute("select app.sessions_purge(%s) as n", (clock.now(),))
        row = await cur.fetchone()
    return int(row["n"]) if row else 0
