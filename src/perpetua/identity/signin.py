"""Signing in with email and password.

An unknown email and a wrong password give the same error after the same work, so
the answer never reveals which addresses have accounts.
"""

from __future__ import annotations

import uuid

from anyio import to_thread

from perpetua.access.claims import Claims
from perpetua.db.pool import Database
from perpetua.identity.passwords import dummy_verify, hash_password, verify_password


async def check_password(db: Database, email: str, password: str) -> uuid.UUID:
    """Return the user's id if the password is right; raise InvalidCredentials
    (`dummy_verify` raises it for an unknown email, after the same work)."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.login_lookup(%s)", (email.strip()[:254],)
        )
        row = await cur.fetchone()

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
    return user_id
