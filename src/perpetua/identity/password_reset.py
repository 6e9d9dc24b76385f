"""Guards changing a password: by the signed-in user (who proves the current one),
or by an emailed reset link (single use, 30 minutes).

Asking for a reset gives the same answer whether or not the address has an account.
A reset ends every session of the account and never touches its second factors:
control of the mailbox must not be enough to take over an account protected by
MFA. Only the SHA-256 of the link's token is stored, and the token travels in the
link's fragment, never in a URL a server logs.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import psycopg
from anyio import to_thread

from perpetua.access.claims import Claims, system_claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.identity import history
from perpetua.identity.errors import LinkInvalid
from perpetua.identity.passwords import check_password_policy, hash_password
from perpetua.identity.sessions import (
    Principal,
    end_own_sessions,
    token_hash,
)
from perpetua.identity.signin import check_password
from perpetua.mail import outbox

LIFETIME = dt.timedelta(minutes=30)


async def request_reset(
    db: Database, clock: Clock, email: str, origin: str, actor: history.Actor
) -> None:
    """Queue a reset link if the address has an account; say nothing either way."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    async with db.transaction(system_claims("password-reset")) as conn:
        cur = await conn.execute(
            "select * from app.password_reset_create(%s, %s, %s, %s)",
            (
                email.strip()[:254],
                token_hash(token),
                now,
                int(LIFETIME.total_seconds()),
            ),
        )
        row = await cur.fetchone()
        if row is None:
            return
        await outbox.enqueue(
            conn,
            now,
            kind="password_reset",
            to=str(row["email"]),
            subject="Reset your Perpetua password",
            body=(
                "Someone asked to reset the password of your Perpetua account.\n\n"
                f"Choose a new password within 30 minutes:\n"
                f"{origin}/password/reset#{token}\n\n"
                "The link works once. Your second factor stays as it is. If you did "
                "not ask for this, ignore this message.\n"
            ),
        )
    await history.record(
        db, now, history.PASSWORD_RESET_REQUESTED, actor, user_id=row["user_id"]
    )


async def reset(
    db: Database,
    clock: Clock,
    token: str,
    new_password: str,
    actor: history.Actor,
    purpose: str = "reset",
) -> uuid.UUID:
    """Set a new password through a link; return the account's id."""
    if not token or len(token) > 200:
        raise LinkInvalid()
    digest = token_hash(token)
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.password_reset_peek(%s, %s)", (digest, clock.now())
        )
        row = await cur.fetchone()
    if row is None or row["purpose"] != purpose:
        raise LinkInvalid()
    check_password_policy(new_password, email=row["email"], name=row["full_name"])
    hashed = await to_thread.run_sync(lambda: hash_password(new_password))
    try:
        async with db.transaction(None) as conn:
            await conn.execute(
                "select app.password_reset_consume(%s, %s, %s)",
                (digest, clock.now(), hashed),
            )
    except psycopg.Error as exc:
        if exc.sqlstate == "PR410":
            raise LinkInvalid() from exc
        raise
    await history.record(
        db, clock.now(), history.PASSWORD_RESET, actor, user_id=row["user_id"]
    )
    return uuid.UUID(str(row["user_id"]))


async def change(
    db: Database,
    clock: Clock,
    principal: Principal,
    actor: history.Actor,
    *,
    current: str,
    new_password: str,
) -> None:
    """Change the signed-in user's password and end their other sessions."""
    claims = Claims(actor_kind="user", actor_id=principal.user_id, request_id="pw")
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select email, full_name from app.users where id = %s",
            (principal.user_id,),
        )
        user = await cur.fetchone()
    assert user is not None
    await check_password(db, str(user["email"]), current)
    check_password_policy(new_password, email=user["email"], name=user["full_name"])
    hashed = await to_thread.run_sync(lambda: hash_password(new_password))
    async with db.transaction(claims) as conn:
        await conn.execute(
            "update app.users set password_hash = %s where id = %s",
            (hashed, principal.user_id),
        )
        await history.record_in(
            conn,
            clock.now(),
            history.PASSWORD_CHANGED,
            actor,
            user_id=principal.user_id,
        )
    await end_own_sessions(db, clock, principal, None, reason="password_changed")
