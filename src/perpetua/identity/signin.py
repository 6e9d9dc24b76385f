"""Signing in with email and password: the first factor, behind the throttle.

An unknown email and a wrong password give the same error after the same work, so
the answer never reveals which addresses have accounts. A locked account or address
is refused before any hashing, and every attempt, refused or not, is a row in the
security history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.errors import InvalidCredentials
from perpetua.identity import history, throttle
from perpetua.identity.errors import TooManyAttempts
from perpetua.identity.passwords import dummy_verify, hash_password, verify_password


@dataclass(frozen=True)
class Account:
    user_id: uuid.UUID
    kind: str


async def _lookup(db: Database, email: str) -> dict[str, object] | None:
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.login_lookup(%s)", (email.strip()[:254],)
        )
        return await cur.fetchone()


async def check_password(db: Database, email: str, password: str) -> Account:
    """Return the account if the password is right; raise InvalidCredentials
    (`dummy_verify` raises it for an unknown email, after the same work)."""
    row = await _lookup(db, email)

    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    if row is None:
        await to_thread.run_sync(lambda: dummy_verify(password))
    assert row is not None
    stored = str(row["password_hash"])
    user_id = uuid.UUID(str(row["user_id"]))
    stale = await to_thread.run_sync(
        lambda: verify_password(password=password, password_hash=stored)
    )

    # The password is known to be right only now: the one moment a hash made with
    # weaker parameters can be replaced without asking the user again.
    if stale:
        fresh = await to_thread.run_sync(lambda: hash_password(password))
        claims = Claims(actor_kind="user", actor_id=user_id, request_id="rehash")
        async with db.transaction(claims) as conn:
            await conn.execute(
                "update app.users set password_hash = %s where id = %s",
                (fresh, user_id),
            )
    return Account(user_id=user_id, kind=str(row["kind"]))


async def authenticate(
    db: Database, clock: Clock, email: str, password: str, actor: history.Actor
) -> Account:
    """The first factor, throttled per account and per address and recorded."""
    account_key = throttle.account_key(email)
    address_key = throttle.address_key(actor.ip)

    try:
        await throttle.check(db, clock, account_key, address_key)
    except TooManyAttempts:
        await _record_failure(db, clock, email, actor, "throttled")
        raise

    try:
        account = await check_password(db, email, password)
    except InvalidCredentials:
        await _record_failure(db, clock, email, actor, None)
        wait = await throttle.failed(
            db,
            clock,
            [
                (account_key, throttle.ACCOUNT_LIMIT),
                (address_key, throttle.ADDRESS_LIMIT),
            ],
        )
        if wait:
            raise TooManyAttempts(wait) from None
        raise

    await throttle.clear(db, account_key)
    return account


async def _record_failure(
    db: Database, clock: Clock, email: str, actor: history.Actor, reason: str | None
) -> str:
    row = await _lookup(db, email)
    user_id = uuid.UUID(str(row["user_id"])) if row else None
    reason = reason or ("wrong_password" if row else "unknown_account")
    await history.record(
        db, clock.now(), history.SIGNIN_FAILED, actor, user_id=user_id, reason=reason
    )
    return reason
