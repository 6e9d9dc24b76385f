"""Telling practices that a new version of the agreement awaits their signature.

A background job: for every practice whose agreement in force is an older
version than the newest released one, the owners get one email saying that the
version they signed stays in force and that the new one is ready to review and
sign in the console. Each (practice, version) is announced once: the notice row
and the messages commit together, and a practice that already signed the new
version, has no agreement in force, or has terminated is not written to.

The message names versions and a link; nothing about patients.
"""

from __future__ import annotations

import datetime as dt
import uuid

from perpetua.access.claims import SYSTEM_ACTOR, Claims, system_claims
from perpetua.clock import Clock
from perpetua.contracts.agreements import Library
from perpetua.contracts.service import owner_addresses
from perpetua.db.pool import Database
from perpetua.mail import outbox

KIND = "baa_new_version"

_IN_FORCE = """
select practice_id, max(version) as signed_version,
       bool_or(version = %(current)s) as has_current
from app.baa_executions
where terminated_at is null
group by practice_id
"""


async def announce_new_version(
    db: Database, clock: Clock, origin: str, library: Library | None = None
) -> int:
    """Announce the current version where it is not signed; returns how many
    practices were told."""
    current = (library or Library()).current().version
    async with db.transaction(system_claims("baa-new-version")) as conn:
        cur = await conn.execute(_IN_FORCE, {"current": current})
        rows = [r for r in await cur.fetchall() if not r["has_current"]]
    told = 0
    for row in rows:
        told += await _announce(
            db, clock.now(), row["practice_id"], row["signed_version"], current, origin
        )
    return told


async def _announce(
    db: Database,
    now: dt.datetime,
    practice_id: uuid.UUID,
    signed: str,
    current: str,
    origin: str,
) -> int:
    claims = Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="baa-new-version",
        practice_id=practice_id,
    )
    async with db.transaction(claims) as conn:
        # The notice row first: a concurrent run waits on its key and then writes
        # nothing, and the messages commit with the row or not at all.
        cur = await conn.execute(
            "insert into app.baa_version_notices (practice_id, version, noticed_at) "
            "values (%s, %s, %s) on conflict do nothing returning practice_id",
            (practice_id, current, now),
        )
        if await cur.fetchone() is None:
            return 0
        for address in await owner_addresses(conn, practice_id):
            await outbox.enqueue(
                conn,
                now,
                kind=KIND,
                to=address,
                subject="A new version of your Business Associate Agreement is ready",
                body=_body(signed, current, origin),
                practice_id=practice_id,
            )
    return 1


def _body(signed: str, current: str, origin: str) -> str:
    return (
        f"Perpetua has released version {current} of its Business Associate "
        "Agreement.\n\n"
        f"The version your practice signed ({signed}) stays in force, and patient "
        "features stay available, until an owner signs the new version. Every "
        "version you signed stays available to download.\n\n"
        "Review the new text and sign it here (sign-in required):\n"
        f"{origin}/agreement\n"
    )
