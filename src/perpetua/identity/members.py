"""Guards who belongs to a practice and with which role: listing members, changing
roles, removing members, and the practice's security settings (require MFA, idle
timeout).

The database enforces the rules that matter most (only owners change roles and
remove members; a manager can never create or change an owner; a practice always
keeps one owner), so a mistake here cannot break them. Every change ends the
affected member's sessions, so their next request runs with the new privileges
under a new session id, and is recorded in the security history.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from perpetua.access.claims import ROLES, Claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden, InvalidInput, NotFound
from perpetua.identity import history
from perpetua.identity.errors import LastOwner
from perpetua.identity.sessions import end_user_sessions


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput("role must be one of: " + ", ".join(ROLES))
    return role


async def list_members(conn: Conn, practice_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "select m.user_id, u.full_name, u.email, m.role, m.provider_id, m.created_at "
        "from app.memberships m join app.users u on u.id = m.user_id "
        "where m.practice_id = %s order by u.full_name",
        (practice_id,),
    )
    return list(await cur.fetchall())


def _refusal(exc: psycopg.Error) -> Exception:
    if exc.sqlstate == "PR409":
        return LastOwner()
    if exc.sqlstate == "PR403":
        return Forbidden("only an owner creates or changes owners")
    return exc


async def change_role(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    user_id: uuid.UUID,
    role: str,
    provider_id: uuid.UUID | None = None,
) -> None:
    check_role(role)
    if claims.practice_role != "owner":
        raise Forbidden("only owners change roles")
    assert claims.practice_id is not None
    try:
        async with db.transaction(claims) as conn:
            cur = await conn.execute(
                "select role from app.memberships where practice_id = %s "
                "and user_id = %s",
                (claims.practice_id, user_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound("no such member")
            await conn.execute(
                "update app.memberships set role = %s, provider_id = %s "
                "where practice_id = %s and user_id = %s",
                (
                    role,
                    provider_id if role == "provider" else None,
                    claims.practice_id,
                    user_id,
                ),
            )
            await history.record_in(
                conn,
                clock.now(),
                history.ROLE_CHANGED,
                actor,
                user_id=user_id,
                practice_id=claims.practice_id,
                detail={"from": row["role"], "to": role},
            )
    except psycopg.Error as exc:
        raise _refusal(exc) from exc
    await end_user_sessions(db, clock, user_id, "privilege_changed")


async def remove_member(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    user_id: uuid.UUID,
) -> None:
    if claims.practice_role != "owner":
        raise Forbidden("only owners remove members")
    assert claims.practice_id is not None
    try:
        async with db.transaction(claims) as conn:
            cur = await conn.execute(
                "delete from app.memberships where practice_id = %s and user_id = %s "
                "returning role",
                (claims.practice_id, user_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound("no such member")
            await history.record_in(
                conn,
                clock.now(),
                history.MEMBER_REMOVED,
                actor,
                user_id=user_id,
                practice_id=claims.practice_id,
                detail={"role": row["role"]},
            )
            # Tokens this member made must stop with their membership.
            await conn.execute(
                "update app.api_tokens set revoked_at = %s where practice_id = %s "
                "and created_by = %s and revoked_at is null",
                (clock.now(), claims.practice_id, user_id),
            )
    except psycopg.Error as exc:
        raise _refusal(exc) from exc
    await end_user_sessions(db, clock, user_id, "membership_removed")


async def security_settings(conn: Conn, practice_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(
        "select require_mfa, session_idle_minutes from app.practices where id = %s",
        (practice_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound()
    return dict(row)


async def update_security_settings(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    *,
    require_mfa: bool | None,
    session_idle_minutes: int | None,
) -> dict[str, Any]:
    if claims.practice_role != "owner":
        raise Forbidden("only owners change the practice's security settings")
    if session_idle_minutes is not None and not 1 <= session_idle_minutes <= 240:
        raise InvalidInput("the idle timeout must be between 1 and 240 minutes")
    assert claims.practice_id is not None
    try:
        async with db.transaction(claims) as conn:
            before = await security_settings(conn, claims.practice_id)
            await conn.execute(
                "update app.practices set "
                "require_mfa = coalesce(%s, require_mfa), "
                "session_idle_minutes = coalesce(%s, session_idle_minutes) "
                "where id = %s",
                (require_mfa, session_idle_minutes, claims.practice_id),
            )
            after = await security_settings(conn, claims.practice_id)
            if after != before:
                await history.record_in(
                    conn,
                    clock.now(),
                    history.SECURITY_SETTINGS_CHANGED,
                    actor,
                    practice_id=claims.practice_id,
                    detail={"before": before, "after": after},
                )
    except psycopg.Error as exc:
        raise _refusal(exc) from exc
    return after
