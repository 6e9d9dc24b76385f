"""Sessions: a random token in the cookie (or bearer header), only its SHA-256 in the
database, an idle timeout and an absolute lifetime enforced where the session is
resolved, so an ended session can never act again.

A session records how far its holder has proven themself (`state`): a right
password alone opens only `mfa_pending` (when a second factor is enrolled) or
`mfa_enrolment` (when one is required but missing); only `full` reaches the
practice. Moving between states, or to a new privilege, always issues a new token
and ends the old one, so a token seen before sign-in is worthless after it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from perpetua.access.claims import Claims, Role
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.errors import NotAuthenticated, SessionExpired
from perpetua.identity.errors import (
    FreshSecondFactorRequired,
    ReauthenticationRequired,
)

TOKEN_BYTES = 32
SessionState = Literal["full", "mfa_pending", "mfa_enrolment"]

# A half-signed-in session lives only long enough to type a code or enrol a key.
UNFINISHED_LIFETIME = dt.timedelta(minutes=15)

# Sensitive actions (second factors, roles, tokens, security settings) need a
# password or second factor proven this recently in the same session.
REAUTH_WINDOW = dt.timedelta(minutes=10)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class Principal:
    """The identity a request acts as: a signed-in person or an API token."""

    user_id: uuid.UUID
    user_kind: str
    practice_id: uuid.UUID | None
    role: Role | None
    token_hash: bytes
    session_id: uuid.UUID | None = None
    state: SessionState = "full"
    authenticated_at: dt.datetime | None = None
    mfa_at: dt.datetime | None = None
    scopes: tuple[str, ...] | None = None

    @property
    def is_api_token(self) -> bool:
        return self.user_kind == "api_token"

    @property
    def is_staff(self) -> bool:
        return self.user_kind == "staff"

    def claims(
        self, request_id: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> Claims:
        kind: Any = {"staff": "staff", "api_token": "api_token"}.get(
            self.user_kind, "user"
        )
        return Claims(
            actor_kind=kind,
            actor_id=self.user_id,
            request_id=request_id,
            # Staff never carry a practice: they have no way to PHI.
            practice_id=self.practice_id if self.role and not self.is_staff else None,
            practice_role=self.role if not self.is_staff else None,
            client_ip=ip,
            user_agent=user_agent,
            scopes=self.scopes,
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
    state: SessionState = "full",
    mfa: bool = False,
) -> str:
    """Create a session and return its token; the token is never stored. The idle
    timeout is the practice's own when the session acts in one."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    lifetime = policy.absolute if state == "full" else UNFINISHED_LIFETIME
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_create(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                token_hash(token),
                user_id,
                practice_id,
                clock.now(),
                state,
                int(policy.idle.total_seconds()),
                int(lifetime.total_seconds()),
                ip,
                user_agent,
                mfa,
            ),
        )
    return token


async def resolve_session(db: Database, clock: Clock, token: str | None) -> Principal:
    if not token or len(token) > 200:
        raise NotAuthenticated()
    digest = token_hash(token)
    row = await db.call(
        "select * from app.session_resolve(%s, %s)", (digest, clock.now())
    )
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
        session_id=row["session_id"],
        state=row["state"],
        authenticated_at=row["authenticated_at"],
        mfa_at=row["mfa_at"],
    )


async def rotate_session(
    db: Database,
    clock: Clock,
    policy: SessionPolicy,
    principal: Principal,
    *,
    ip: str | None,
    user_agent: str | None,
    state: SessionState = "full",
    mfa: bool = False,
) -> str:
    """Replace the caller's session with a new one (new id, new token), as at every
    step up in privilege; the old token stops working at once."""
    await end_session(db, clock, principal, reason="rotated")
    return await start_session(
        db,
        clock,
        policy,
        user_id=principal.user_id,
        practice_id=principal.practice_id,
        ip=ip,
        user_agent=user_agent,
        state=state,
        mfa=mfa,
    )


async def end_session(
    db: Database, clock: Clock, principal: Principal, reason: str = "signed_out"
) -> None:
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_end(%s, %s, %s)",
            (principal.token_hash, clock.now(), reason),
        )


async def end_own_sessions(
    db: Database,
    clock: Clock,
    principal: Principal,
    session_id: uuid.UUID | None,
    reason: str = "revoked",
) -> int:
    """End one of the caller's sessions, or all of them (`session_id` None)."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select app.session_end_own(%s, %s, %s, %s) as n",
            (principal.token_hash, session_id, clock.now(), reason),
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def end_user_sessions(
    db: Database, clock: Clock, user_id: uuid.UUID, reason: str
) -> int:
    """End every session of another user whose privileges just changed."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select app.session_end_user(%s, %s, %s) as n",
            (user_id, clock.now(), reason),
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def list_sessions(
    db: Database, clock: Clock, principal: Principal
) -> list[dict[str, Any]]:
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.session_list(%s, %s)",
            (principal.token_hash, clock.now()),
        )
        return list(await cur.fetchall())


async def mark_fresh(
    db: Database,
    clock: Clock,
    principal: Principal,
    *,
    password: bool = False,
    mfa: bool = False,
) -> None:
    """Record that the caller just proved their password or second factor again."""
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_mark(%s, %s, %s, %s)",
            (principal.token_hash, clock.now(), password, mfa),
        )


def _recent(moment: dt.datetime | None, now: dt.datetime) -> bool:
    return moment is not None and now - moment < REAUTH_WINDOW


def require_recent_auth(principal: Principal, clock: Clock) -> None:
    """Sensitive actions need a password or second factor proven moments ago."""
    now = clock.now()
    if not (_recent(principal.authenticated_at, now) or _recent(principal.mfa_at, now)):
        raise ReauthenticationRequired()


def require_fresh_second_factor(principal: Principal, clock: Clock) -> None:
    if not _recent(principal.mfa_at, clock.now()):
        raise FreshSecondFactorRequired()


async def set_challenge(
    db: Database, clock: Clock, principal: Principal, purpose: str, challenge: bytes
) -> None:
    async with db.transaction(None) as conn:
        await conn.execute(
            "select app.session_set_challenge(%s, %s, %s, %s)",
            (
                principal.token_hash,
                purpose,
                challenge,
                clock.now() + dt.timedelta(minutes=5),
            ),
        )


async def take_challenge(
    db: Database, clock: Clock, principal: Principal, purpose: str
) -> bytes | None:
    """The challenge issued to this session for `purpose`, removed as it is read."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select app.session_take_challenge(%s, %s, %s) as c",
            (principal.token_hash, purpose, clock.now()),
        )
        row = await cur.fetchone()
    return bytes(row["c"]) if row and row["c"] is not None else None


async def purge_ended_sessions(db: Database, clock: Clock) -> int:
    async with db.transaction(None) as conn:
        cur = await conn.execute("select app.sessions_purge(%s) as n", (clock.now(),))
        row = await cur.fetchone()
    return int(row["n"]) if row else 0
