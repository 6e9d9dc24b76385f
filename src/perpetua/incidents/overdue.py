"""The background job that escalates an overdue clock loudly, once.

Run by the job runner with the application's clock (tests move it instead of
waiting). For every open incident it computes the clocks; each clock that has
passed its deadline unmet is recorded in incidents.escalations and announced to
the practice's owners and managers by email, in one transaction per incident.
The escalation row's key (incident, clock) and a lock on the incident row make a
second run, or two runs at once, announce nothing twice. The console shows the
overdue clocks as a banner to the practice and to Perpetua's staff.

The email names the incident, the clock and its deadline; no patient, no PHI.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from perpetua.access.claims import SYSTEM_ACTOR, Claims, system_claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.incidents.clocks import ClockFacts, Deadline, overdue
from perpetua.mail import outbox
from perpetua.observability.logging import get_logger

log = get_logger("perpetua.incidents")

_OPEN_INCIDENTS = """
select i.id, i.practice_id, i.discovered_at, i.largest_state_count, i.conclusion,
       cardinality(i.affected_patient_ids) as affected_count,
       i.individuals_notified_at, i.hhs_notified_at, i.media_notified_at,
       i.hhs_logged_at,
       (select min(o.sent_at) from incidents.notices n
          join app.mail_outbox o on o.id = any (n.outbox_ids)
         where n.incident_id = i.id) as notice_delivered_at,
       coalesce((select array_agg(e.clock) from incidents.escalations e
                 where e.incident_id = i.id), '{}') as escalated
from incidents.incidents i
where i.status = 'open'
"""


def _facts(row: dict[str, Any]) -> ClockFacts:
    return ClockFacts(
        discovered_at=row["discovered_at"],
        affected_count=row["affected_count"],
        largest_state_count=row["largest_state_count"],
        conclusion=row["conclusion"],
        practice_notified_at=row["notice_delivered_at"],
        individuals_notified_at=row["individuals_notified_at"],
        hhs_notified_at=row["hhs_notified_at"],
        media_notified_at=row["media_notified_at"],
        hhs_logged_at=row["hhs_logged_at"],
    )


async def escalate_overdue(db: Database, clock: Clock, origin: str) -> int:
    """Escalate every overdue clock not yet escalated; returns how many were."""
    now = clock.now()
    async with db.transaction(system_claims("incidents-overdue")) as conn:
        cur = await conn.execute(_OPEN_INCIDENTS)
        rows = list(await cur.fetchall())
    escalated = 0
    for row in rows:
        already = set(row["escalated"])
        for deadline in overdue(_facts(row), now):
            if deadline.clock not in already:
                escalated += await _escalate(db, now, row, deadline, origin)
    return escalated


async def _escalate(
    db: Database,
    now: dt.datetime,
    row: dict[str, Any],
    deadline: Deadline,
    origin: str,
) -> int:
    incident_id: uuid.UUID = row["id"]
    claims = Claims(
        actor_kind="system",
        actor_id=SYSTEM_ACTOR,
        request_id="incidents-overdue",
        practice_id=row["practice_id"],
    )
    async with db.transaction(claims) as conn:
        # Serialise with any other run on this incident, then look again.
        await conn.execute(
            "select id from incidents.incidents where id = %s for update",
            (incident_id,),
        )
        cur = await conn.execute(
            "select 1 from incidents.escalations where incident_id = %s and clock = %s",
            (incident_id, deadline.clock),
        )
        if await cur.fetchone():
            return 0
        cur = await conn.execute(
            "select u.email from app.memberships m "
            "join app.users u on u.id = m.user_id "
            "where m.practice_id = %s and m.role in ('owner', 'manager') "
            "order by u.email",
            (row["practice_id"],),
        )
        sent = []
        for member in await cur.fetchall():
            sent.append(
                await outbox.enqueue(
                    conn,
                    now,
                    kind="incident_overdue",
                    to=member["email"],
                    subject="Overdue: a breach-notification deadline has passed",
                    body=_body(incident_id, deadline, origin),
                    practice_id=row["practice_id"],
                )
            )
        await conn.execute(
            "insert into incidents.escalations (incident_id, practice_id, clock, "
            "due_at, escalated_at, outbox_ids) values (%s, %s, %s, %s, %s, %s)",
            (
                incident_id,
                row["practice_id"],
                deadline.clock,
                deadline.due_at,
                now,
                sent,
            ),
        )
    log.warning(
        "incident_clock_overdue", incident_id=str(incident_id), clock=deadline.clock
    )
    return 1


def _body(incident_id: uuid.UUID, deadline: Deadline, origin: str) -> str:
    return (
        f"A deadline of incident {incident_id} has passed without being met:\n\n"
        f"  {deadline.label}\n"
        f"  due {deadline.due_at:%Y-%m-%d %H:%M} UTC\n\n"
        "Record the notice in Perpetua once it is given, or act on it now:\n"
        f"{origin}/incidents/{incident_id}\n"
    )
