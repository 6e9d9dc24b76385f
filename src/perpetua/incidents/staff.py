"""Perpetua's staff and incidents: a queue across practices without PHI (ids,
counts, dates, detector names), and the two steps staff take for a practice:
opening an incident (from an alert, or by hand with the discovery time they
state) and sending the practice its notice (incidents/notice.py).

Staff claims carry no practice, so no policy lets them near a practice's rows;
every step runs in a SECURITY DEFINER function of incidents_api that checks for
actor_kind 'staff' and returns only PHI-free columns.
"""

from __future__ import annotations

import datetime as dt
import uuid

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.errors import NotFound
from perpetua.incidents.errors import AlertClosed, AlertNotFound, IncidentInputInvalid
from perpetua.incidents.guards import refusals, require_staff
from perpetua.incidents.models import StaffAlert, StaffIncident


async def alert_queue(db: Database, claims: Claims) -> list[StaffAlert]:
    require_staff(claims)
    async with db.transaction(claims) as conn:
        cur = await conn.execute("select * from monitor.staff_queue() limit 500")
        rows = await cur.fetchall()
    return [StaffAlert(**row) for row in rows]


async def incident_queue(db: Database, claims: Claims) -> list[StaffIncident]:
    require_staff(claims)
    async with db.transaction(claims) as conn:
        cur = await conn.execute("select * from incidents_api.staff_incidents()")
        rows = await cur.fetchall()
    return [StaffIncident.from_row(row) for row in rows]


async def open_for_practice(
    db: Database,
    clock: Clock,
    claims: Claims,
    practice_id: uuid.UUID,
    *,
    alert_id: uuid.UUID | None = None,
    discovered_at: dt.datetime | None = None,
) -> uuid.UUID:
    """Open an incident for a practice: from its alert (idempotent), or by hand."""
    require_staff(claims)
    now = clock.now()
    with refusals(AlertNotFound if alert_id else NotFound, AlertClosed):
        async with db.transaction(claims) as conn:
            if alert_id is not None:
                cur = await conn.execute(
                    "select incidents_api.open_from_alert(%s, %s, %s, %s) as id",
                    (uuid.uuid4(), practice_id, alert_id, now),
                )
            else:
                when = discovered_at or now
                if when.tzinfo is None:
                    raise IncidentInputInvalid("discovery time must carry a time zone")
                cur = await conn.execute(
                    "select incidents_api.open_by_hand("
                    "%s, %s, %s, %s, null, null, null, null, null) as id",
                    (uuid.uuid4(), practice_id, when, now),
                )
            row = await cur.fetchone()
    assert row is not None
    made: uuid.UUID = row["id"]
    return made
