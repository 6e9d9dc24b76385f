"""Guards sign-in and second-factor checks against guessing: failures are counted
per account and per client address in PostgreSQL (so every server process agrees),
and a key that failed too often is locked with a retry-after that doubles with each
further failure, up to an hour.

A locked key is refused before any password is hashed, so a flood of guesses costs
the server almost nothing. The account key is a hash of the lowercased email and is
kept for unknown emails too: an address with no account is throttled exactly like
one with an account, so the lock reveals nothing.

Limitation: an attacker who knows a member's email can keep that account locked
for up to an hour at a time; the lock never disables the account, and the history
shows every attempt to the member and their owner.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.identity.errors import TooManyAttempts


@dataclass(frozen=True)
class Limit:
    failures: int
    window_seconds: int


ACCOUNT_LIMIT = Limit(failures=5, window_seconds=900)
# An address may serve a whole practice behind one NAT, so it gets more room.
ADDRESS_LIMIT = Limit(failures=20, window_seconds=900)
SECOND_FACTOR_LIMIT = Limit(failures=5, window_seconds=900)


def account_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return "account:" + digest


def address_key(ip: str | None) -> str | None:
    return "ip:" + ip if ip else None


def second_factor_key(user_id: uuid.UUID) -> str:
    return f"mfa:{user_id}"


def _keys(*keys: str | None) -> list[str]:
    return [key for key in keys if key]


async def check(db: Database, clock: Clock, *keys: str | None) -> None:
    """Raise `TooManyAttempts` if any key is locked now."""
    async with db.transaction(None) as conn:
        cur = await conn.execute(
            "select app.throttle_retry_after(%s, %s) as s", (_keys(*keys), clock.now())
        )
        row = await cur.fetchone()
    wait = int(row["s"]) if row else 0
    if wait > 0:
        raise TooManyAttempts(wait)


async def failed(
    db: Database, clock: Clock, limited: list[tuple[str | None, Limit]]
) -> int:
    """Count one failure against each key; return the longest retry-after now due."""
    wait = 0
    async with db.transaction(None) as conn:
        for key, limit in limited:
            if not key:
                continue
            cur = await conn.execute(
                "select app.throttle_failure(%s, %s, %s, %s) as s",
                (key, limit.failures, limit.window_seconds, clock.now()),
            )
            row = await cur.fetchone()
            wait = max(wait, int(row["s"]) if row else 0)
    return wait


async def clear(db: Database, key: str) -> None:
    async with db.transaction(None) as conn:
        await conn.execute("select app.throttle_clear(%s)", (key,))
