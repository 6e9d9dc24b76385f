"""Guards how people join a practice: an owner or manager invites an email address
to a role; the emailed link works once, for that address only, for 72 hours.

Only the SHA-256 of the link's token is stored. The token travels in the link's
fragment (after `#`), which browsers never send to a server, so it cannot end up in
access logs or a Referer header; the page's script hands it over in a form.
Managers cannot invite owners: the database's policy refuses it too.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.errors import EmailTaken, Forbidden, InvalidInput
from perpetua.identity import history
from perpetua.identity.errors import AlreadyMember, LinkInvalid
from perpetua.identity.members import check_role
from perpetua.identity.passwords import check_password_policy, hash_password
from perpetua.identity.sessions import token_hash
from perpetua.identity.signin import check_password
from perpetua.mail import outbox
from perpetua.practices.service import clean_email, clean_name

LIFETIME = dt.timedelta(hours=72)


async def invite(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    *,
    email: str,
    role: str,
    origin: str,
    provider_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record the invitation and queue its email in one transaction."""
    email = clean_email(email)
    check_role(role)
    if claims.practice_role not in ("owner", "manager"):
        raise Forbidden("only owners and managers invite members")
    if role == "owner" and claims.practice_role != "owner":
        raise Forbidden("only an owner invites another owner")
    assert claims.practice_id is not None

    token = secrets.token_urlsafe(32)
    invitation_id = uuid.uuid4()
    now = clock.now()
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select name from app.practices where id = %s", (claims.practice_id,)
        )
        practice = await cur.fetchone()
        assert practice is not None
        await conn.execute(
            "insert into app.invitations (id, practice_id, email, role, provider_id, "
            "token_hash, invited_by, created_at, expires_at) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                invitation_id,
                claims.practice_id,
                email,
                role,
                provider_id if role == "provider" else None,
                token_hash(token),
                claims.actor_id,
                now,
                now + LIFETIME,
            ),
        )
        await outbox.enqueue(
            conn,
            now,
            kind="invitation",
            to=email,
            subject=f"You are invited to {practice['name']} on Perpetua",
            body=(
                f"You have been invited to join {practice['name']} on Perpetua as "
                f"{role.replace('_', ' ')}.\n\n"
                f"Accept within 72 hours:\n{origin}/invitations/accept#{token}\n\n"
                "The link works once. If you did not expect this, ignore it.\n"
            ),
            practice_id=claims.practice_id,
        )
        await history.record_in(
            conn,
            now,
            history.INVITATION_SENT,
            actor,
            practice_id=claims.practice_id,
            detail={"invitation_id": str(invitation_id), "role": role},
        )
    return invitation_id


async def list_open(conn: Conn, practice_id: uuid.UUID, now: dt.datetime) -> list[Any]:
    cur = await conn.execute(
        "select id, email, role, created_at, expires_at from app.invitations "
        "where practice_id = %s and accepted_at is null and revoked_at is null "
        "and expires_at > %s order by created_at desc",
        (practice_id, now),
    )
    return list(await cur.fetchall())


async def revoke(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    invitation_id: uuid.UUID,
) -> bool:
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "update app.invitations set revoked_at = %s where id = %s "
            "and practice_id = %s and accepted_at is null and revoked_at is null",
            (clock.now(), invitation_id, claims.practice_id),
        )
        if cur.rowcount:
            await history.record_in(
                conn,
                clock.now(),
                history.INVITATION_REVOKED,
                actor,
                practice_id=claims.practice_id,
                detail={"invitation_id": str(invitation_id)},
            )
    return bool(cur.rowcount)


@dataclass(frozen=True)
class OpenInvitation:
    practice_id: uuid.UUID
    practice_name: str
    email: str
    role: str
    has_account: bool


async def lookup(db: Database, clock: Clock, token: str) -> OpenInvitation:
    if not token or len(token) > 200:
        raise LinkInvalid()
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.invitation_lookup(%s, %s)",
            (token_hash(token), clock.now()),
        )
        row = await cur.fetchone()
    if row is None:
        raise LinkInvalid()
    return OpenInvitation(
        practice_id=row["practice_id"],
        practice_name=row["practice_name"],
        email=row["email"],
        role=row["role"],
        has_account=row["has_account"],
    )


@dataclass(frozen=True)
class Accepted:
    user_id: uuid.UUID
    practice_id: uuid.UUID


async def accept(
    db: Database,
    clock: Clock,
    token: str,
    actor: history.Actor,
    *,
    password: str,
    full_name: str | None,
) -> Accepted:
    """Join the practice: with the existing account's password, or by creating the
    account for the invited address."""
    invitation = await lookup(db, clock, token)
    if invitation.has_account:
        account = await check_password(db, invitation.email, password)
        user_id = account.user_id
    else:
        name = clean_name(full_name or "", "your name")
        check_password_policy(password, email=invitation.email, name=name)
        hashed = await to_thread.run_sync(lambda: hash_password(password))
        user_id = uuid.uuid4()
        claims = Claims(actor_kind="user", actor_id=user_id, request_id="invitation")
        try:
            async with db.transaction(claims) as conn:
                await conn.execute(
                    "insert into app.users (id, email, full_name, password_hash, "
                    "created_at) values (%s, %s, %s, %s, %s)",
                    (user_id, invitation.email, name, hashed, clock.now()),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise EmailTaken() from exc

    try:
        async with db.transaction(None) as conn:
            cur = await conn.execute(
                "select app.invitation_accept(%s, %s, %s) as practice_id",
                (token_hash(token), clock.now(), user_id),
            )
            row = await cur.fetchone()
            assert row is not None
    except psycopg.Error as exc:
        if exc.sqlstate == "PR409":
            raise AlreadyMember() from exc
        if exc.sqlstate == "PR410":
            raise LinkInvalid() from exc
        raise
    await history.record(
        db,
        clock.now(),
        history.INVITATION_ACCEPTED,
        history.Actor("user", user_id, actor.ip, actor.user_agent),
        user_id=user_id,
        practice_id=row["practice_id"],
        detail={"role": invitation.role},
    )
    return Accepted(user_id=user_id, practice_id=row["practice_id"])


def validate_invite_input(email: str, role: str) -> None:
    clean_email(email)
    if role not in ("owner", "manager", "biller", "front_desk", "provider"):
        raise InvalidInput("unknown role")
