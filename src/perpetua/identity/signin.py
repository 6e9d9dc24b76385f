"""Signing in with email and password.

An unknown email and a wrong password give the same error after the same work, so
the answer never reveals which addresses have accounts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from anyio import to_thread

from perpetua.db.pool import Database
from perpetua.errors import InvalidCredentials
from perpetua.identity.passwords import dummy_verify, verify_password


@dataclass(frozen=True)
class Membership:
    practice_id: uuid.UUID
    practice_name: str
    role: str


async def check_password(db: Database, email: str, password: str) -> uuid.UUID:
    """Return the user's id if the password is right; raise InvalidCredentials."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select * from app.login_lookup(%s)", (email.strip()[:254],)
        )
        row = await cur.fetchone()

    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    if row is None:
        await to_thread.run_sync(lambda: dummy_verify(password))
        raise InvalidCredentials()
    stored = str(row["password_hash"])
    await to_thread.run_sync(
        lambda: verify_password(password=password, password_hash=stored)
    )
    return uuid.UUID(str(row["user_id"]))
