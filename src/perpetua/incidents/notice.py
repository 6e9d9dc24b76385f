"""The notice Perpetua, as business associate, owes the practice under 45 CFR
164.410: the affected individuals as far as known, what happened, the dates of
the breach and of its discovery, the kinds of PHI involved, the mitigation, and
whom to contact. It goes to every owner and manager through the outbox, in the
transaction that records it, and the outbox records its delivery time.

Email is not a place for PHI: the message identifies the affected individuals by
count and record reference only; their names are in the console, where each
reading is recorded. A notice may be sent again as facts become known
(164.410(c)(2)); the practice-notice clock is met by the first delivery.

Staff may send the notice for a practice. The facts are read and the message is
composed in this process, but nothing of it is returned to them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.incidents.errors import IncidentNotFound, IncidentsForManagers
from perpetua.incidents.guards import MANAGER_ROLES, refusals
from perpetua.incidents.models import CONCLUSIONS, PHI_KINDS

SUBJECT = "Security incident notice from Perpetua (45 CFR 164.410)"
# Enough references for the practice to start; the console lists every one.
LISTED_REFERENCES = 50


@dataclass(frozen=True)
class NoticeSent:
    notice_id: uuid.UUID
    recipients: int
    affected_count: int


def _when(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "not yet established"


def compose(facts: dict[str, Any], incident_id: uuid.UUID, origin: str) -> str:
    """The body of the notice, from the row incidents_api.notice_facts returns."""
    affected: list[uuid.UUID] = list(facts["affected_patient_ids"] or ())
    kinds = [PHI_KINDS[k] for k in facts["phi_kinds"] or () if k in PHI_KINDS]
    listed = "\n".join(f"  - {pid}" for pid in affected[:LISTED_REFERENCES])
    more = len(affected) - LISTED_REFERENCES
    if more > 0:
        listed += f"\n  ... and {more} more, listed in Perpetua"
    happened = facts["description"] or (
        f"Perpetua's monitoring (detector: {facts['detector']}) found access to "
        "patient records that may not have been permitted. The investigation "
        "continues."
    )
    conclusion = CONCLUSIONS.get(facts["conclusion"] or "", "assessment in progress")
    return "\n".join(
        [
            f"Perpetua, your business associate, notifies {facts['practice_name']} "
            "of a security incident involving protected health information, as "
            "45 CFR 164.410 requires.",
            "",
            f"Incident reference: {incident_id}",
            f"What happened: {happened}",
            "Dates of the breach: "
            f"{_when(facts['window_from'])} to {_when(facts['window_to'])}",
            f"Date of discovery: {_when(facts['discovered_at'])}",
            "Kinds of PHI involved: "
            + (", ".join(kinds) if kinds else "being established"),
            f"Individuals affected, as far as known: {len(affected)} patient "
            "record(s).",
            *([f"Record references:\n{listed}"] if affected else []),
            "Names are shown to the practice's owners and managers in Perpetua; "
            "each viewing is recorded.",
            f"Risk assessment (45 CFR 164.402): {conclusion}",
            f"Mitigation: {facts['mitigation'] or 'being established'}",
            "Contact: "
            + (facts["contact"] or "Perpetua's security team, by reply to this notice"),
            "",
            f"Open the incident: {origin}/incidents/{incident_id}",
            "We will supplement this notice as more becomes known.",
        ]
    )


async def send_practice_notice(
    db: Database, clock: Clock, claims: Claims, incident_id: uuid.UUID, origin: str
) -> NoticeSent:
    """Compose and queue the notice to the practice's owners and managers."""
    member = claims.actor_kind == "user" and claims.practice_role in MANAGER_ROLES
    if not member and claims.actor_kind != "staff":
        raise IncidentsForManagers()
    notice_id = uuid.uuid4()
    with refusals():
        async with db.transaction(claims) as conn:
            cur = await conn.execute(
                "select * from incidents_api.notice_facts(%s)", (incident_id,)
            )
            facts = await cur.fetchone()
            if facts is None:
                raise IncidentNotFound()
            cur = await conn.execute(
                "select incidents_api.queue_practice_notice(%s, %s, %s, %s, %s) "
                "as recipients",
                (
                    notice_id,
                    incident_id,
                    SUBJECT,
                    compose(facts, incident_id, origin),
                    clock.now(),
                ),
            )
            row = await cur.fetchone()
    assert row is not None
    return NoticeSent(
        notice_id=notice_id,
        recipients=int(row["recipients"]),
        affected_count=len(facts["affected_patient_ids"] or ()),
    )
