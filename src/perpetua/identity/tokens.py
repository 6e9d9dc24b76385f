"""Guards API tokens for a practice's integrations.

A token is `pt_` followed by 43 random URL-safe characters; the prefix lets
secret scanners and our own log scrubber recognise one. Only its SHA-256 is stored;
it is shown once. It acts in one practice with its creator's current role narrowed
to its scopes (`identity/scopes.py`), its claims carry `actor_kind` 'api_token'
and the token's own id, so every later audit record names the token. Revoking is
immediate; each use records when and from where.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.errors import Forbidden, InvalidInput, NotAuthenticated
from perpetua.identity import history
from perpetua.identity.scopes import TOKEN_CREATORS, is_known
from perpetua.identity.sessions import Principal, token_hash

PREFIX = "pt_"


def looks_like_token(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


@dataclass(frozen=True)
class CreatedToken:
    id: uuid.UUID
    token: str


async def create(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    *,
    name: str,
    scopes: list[str],
) -> CreatedToken:
    if claims.practice_role not in TOKEN_CREATORS or claims.actor_kind != "user":
        raise Forbidden("only owners and managers create API tokens")
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 80:
        raise InvalidInput("name the token in 1 to 80 characters")
    wanted = sorted(set(scopes))
    if not wanted or not all(is_known(scope) for scope in wanted):
        raise InvalidInput("choose at least one known scope")

    token = PREFIX + secrets.token_urlsafe(32)
    token_id = uuid.uuid4()
    async with db.transaction(claims) as conn:
        await conn.execute(
            "insert into app.api_tokens (id, practice_id, name, token_hash, scopes, "
            "created_by, created_at) values (%s, %s, %s, %s, %s, %s, %s)",
            (
                token_id,
                claims.practice_id,
                cleaned,
                token_hash(token),
                wanted,
                claims.actor_id,
                clock.now(),
            ),
        )
        await history.record_in(
            conn,
            clock.now(),
            history.API_TOKEN_CREATED,
            actor,
            practice_id=claims.practice_id,
            detail={"token_id": str(token_id), "scopes": wanted},
        )
    return CreatedToken(id=token_id, token=token)


async def list_tokens(conn: Conn, practice_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "select t.id, t.name, t.scopes, t.created_at, t.revoked_at, t.last_used_at, "
        "host(t.last_used_ip) as last_used_ip, u.full_name as created_by_name "
        "from app.api_tokens t left join app.users u on u.id = t.created_by "
        "where t.practice_id = %s order by t.created_at desc",
        (practice_id,),
    )
    return list(await cur.fetchall())


async def revoke(
    db: Database,
    clock: Clock,
    claims: Claims,
    actor: history.Actor,
    token_id: uuid.UUID,
) -> bool:
    if claims.practice_role not in TOKEN_CREATORS:
        raise Forbidden("only owners and managers revoke API tokens")
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "update app.api_tokens set revoked_at = %s where id = %s "
            "and practice_id = %s and revoked_at is null",
            (clock.now(), token_id, claims.practice_id),
        )
        if cur.rowcount:
            await history.record_in(
                conn,
                clock.now(),
                history.API_TOKEN_REVOKED,
                actor,
                practice_id=claims.practice_id,
                detail={"token_id": str(token_id)},
            )
    return bool(cur.rowcount)


async def resolve(db: Database, clock: Clock, token: str, ip: str | None) -> Principal:
    if len(token) > 200:
        raise NotAuthenticated()
    digest = token_hash(token)
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.api_token_resolve(%s, %s, %s)",
            (digest, clock.now(), ip),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotAuthenticated()
    return Principal(
        user_id=row["token_id"],
        user_kind="api_token",
        practice_id=row["practice_id"],
        role=row["role"],
        token_hash=digest,
        scopes=tuple(row["scopes"]),
    )
