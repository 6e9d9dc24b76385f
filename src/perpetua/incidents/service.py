"""Incidents as the practice's owners and managers handle them: open one by hand,
compute the affected patients from the audit log, fill in the four-factor risk
assessment, record the notices the practice gave, close it, and see the affected
patients' names through the audited door of the records service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass

from perpetua.access.claims import Claims
from perpetua.clock import Clock
from perpetua.db.pool import Conn, Database
from perpetua.incidents.clocks import ClockName
from perpetua.incidents.errors import (
    AssessmentIncomplete,
    IncidentConflict,
    IncidentInputInvalid,
    IncidentNotFound,
)
from perpetua.incidents.guards import refusals, require_manager
from perpetua.incidents.models import CONCLUSIONS, FACTORS, PHI_KINDS, Incident
from perpetua.records.models import Patient
from perpetua.records.service import Records
from perpetua.redaction import ensure_no_card_number

# The clocks the practice closes itself, and the column recording each.
DONE_COLUMNS: dict[ClockName, str] = {
    "individuals": "individuals_notified_at",
    "hhs": "hhs_notified_at",
    "media": "media_notified_at",
    "hhs_annual_log": "hhs_logged_at",
}
NAMES_REASON = "Breach incident review: affected individuals"

INCIDENT_QUERY = """
select i.id, i.practice_id, i.alert_id, i.detector, i.suspect_actor_kind,
       i.suspect_actor_id, i.window_from, i.window_to, i.discovered_at,
       i.opened_at, i.opened_by_kind, i.status, i.closed_at, i.description,
       i.phi_kinds, i.affected_patient_ids, i.affected_computed_at,
       i.largest_state_count, i.nature_extent, i.unauthorized_person,
       i.acquired_or_viewed, i.mitigation, i.conclusion, i.assessed_at,
       i.contact, i.individuals_notified_at, i.hhs_notified_at,
       i.media_notified_at, i.hhs_logged_at,
       (select min(n.queued_at) from incidents.notices n
         where n.incident_id = i.id) as notice_queued_at,
       (select min(o.sent_at) from incidents.notices n
          join app.mail_outbox o on o.id = any (n.outbox_ids)
         where n.incident_id = i.id) as notice_delivered_at,
       coalesce((select array_agg(e.clock order by e.clock)
                 from incidents.escalations e where e.incident_id = i.id),
                '{}') as escalated
from incidents.incidents i
"""


@dataclass(frozen=True)
class NewIncident:
    discovered_at: dt.datetime
    description: str | None = None
    suspect_actor_id: uuid.UUID | None = None
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None


@dataclass(frozen=True)
class Assessment:
    """The four factors of 45 CFR 164.402(2), the conclusion, and what the notice
    needs besides."""

    nature_extent: str
    unauthorized_person: str
    acquired_or_viewed: str
    mitigation: str
    conclusion: str
    phi_kinds: tuple[str, ...] = ()
    description: str | None = None
    contact: str | None = None
    largest_state_count: int | None = None


def clean_text(value: str | None, field: str, limit: int) -> str | None:
    """Trimmed free text within `limit`, refused if it holds a card number."""
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > limit:
        raise IncidentInputInvalid(f"{field} must be at most {limit} characters")
    ensure_no_card_number(cleaned)
    return cleaned or None


def aware(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        raise IncidentInputInvalid(f"{field} must carry a time zone")
    return value


async def _fetch(conn: Conn, incident_id: uuid.UUID) -> Incident:
    cur = await conn.execute(INCIDENT_QUERY + "where i.id = %s", (incident_id,))
    row = await cur.fetchone()
    if row is None:
        raise IncidentNotFound()
    return Incident.from_row(row)


async def list_incidents(db: Database, claims: Claims) -> list[Incident]:
    require_manager(claims)
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            INCIDENT_QUERY + "where i.practice_id = %s "
            "order by i.status, i.discovered_at desc limit 200",
            (claims.practice_id,),
        )
        rows = await cur.fetchall()
    return [Incident.from_row(r) for r in rows]


async def get_incident(
    db: Database, claims: Claims, incident_id: uuid.UUID
) -> Incident:
    require_manager(claims)
    async with db.transaction(claims) as conn:
        return await _fetch(conn, incident_id)


async def open_by_hand(
    db: Database, clock: Clock, claims: Claims, new: NewIncident
) -> uuid.UUID:
    """Open an incident for a suspicion no detector raised."""
    require_manager(claims)
    discovered = aware(new.discovered_at, "discovery time")
    window = _window(new.window_from, new.window_to)
    with refusals():
        async with db.transaction(claims) as conn:
            cur = await conn.execute(
                "select incidents_api.open_by_hand("
                "%s, %s, %s, %s, %s, %s, %s, %s, %s) as id",
                (
                    uuid.uuid4(),
                    claims.practice_id,
                    discovered,
                    clock.now(),
                    "user" if new.suspect_actor_id else None,
                    new.suspect_actor_id,
                    *window,
                    clean_text(new.description, "description", 4000),
                ),
            )
            row = await cur.fetchone()
    assert row is not None
    made: uuid.UUID = row["id"]
    return made


def _window(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    if since is not None:
        aware(since, "window start")
    if until is not None:
        aware(until, "window end")
    if since and until and since > until:
        raise IncidentInputInvalid("the window must start before it ends")
    return since, until


async def compute_affected(
    db: Database,
    clock: Clock,
    claims: Claims,
    incident_id: uuid.UUID,
    *,
    window_from: dt.datetime | None = None,
    window_to: dt.datetime | None = None,
) -> Incident:
    """Whose records did the suspect touch within the window: recomputed from the
    audit log (optionally over a corrected window), the reading recorded."""
    require_manager(claims)
    since, until = _window(window_from, window_to)
    with refusals():
        async with db.transaction(claims) as conn:
            if since is not None or until is not None:
                current = await _fetch(conn, incident_id)
                since = since or current.window_from
                until = until or current.window_to
                _window(since, until)
                await conn.execute(
                    "update incidents.incidents set window_from = %s, window_to = %s "
                    "where id = %s",
                    (since, until, incident_id),
                )
            await conn.execute(
                "select incidents_api.compute_affected(%s, %s)",
                (incident_id, clock.now()),
            )
            return await _fetch(conn, incident_id)


async def assess(
    db: Database,
    clock: Clock,
    claims: Claims,
    incident_id: uuid.UUID,
    assessment: Assessment,
) -> Incident:
    """Record the four-factor risk assessment and its conclusion."""
    require_manager(claims)
    factors = {
        name: clean_text(getattr(assessment, name), name.replace("_", " "), 2000)
        for name in FACTORS
    }
    if not all(factors.values()) or assessment.conclusion not in CONCLUSIONS:
        raise AssessmentIncomplete()
    unknown = set(assessment.phi_kinds) - set(PHI_KINDS)
    if unknown:
        raise IncidentInputInvalid("unknown kind of PHI")
    if assessment.largest_state_count is not None and not (
        0 <= assessment.largest_state_count <= 10_000_000
    ):
        raise IncidentInputInvalid("the count of residents of one state is invalid")
    async with db.transaction(claims) as conn:
        current = await _fetch(conn, incident_id)
        if current.status != "open":
            raise IncidentConflict("a closed incident is not assessed again")
        await conn.execute(
            "update incidents.incidents set nature_extent = %s, "
            "unauthorized_person = %s, acquired_or_viewed = %s, mitigation = %s, "
            "conclusion = %s, phi_kinds = %s, description = coalesce(%s, "
            "description), contact = %s, largest_state_count = %s, "
            "assessed_at = %s, assessed_by = %s where id = %s",
            (
                factors["nature_extent"],
                factors["unauthorized_person"],
                factors["acquired_or_viewed"],
                factors["mitigation"],
                assessment.conclusion,
                sorted(set(assessment.phi_kinds)),
                clean_text(assessment.description, "description", 4000),
                clean_text(assessment.contact, "contact", 500),
                assessment.largest_state_count,
                clock.now(),
                claims.actor_id,
                incident_id,
            ),
        )
        return await _fetch(conn, incident_id)


async def record_done(
    db: Database,
    clock: Clock,
    claims: Claims,
    incident_id: uuid.UUID,
    clock_name: ClockName,
    done_at: dt.datetime | None = None,
) -> Incident:
    """Record when the practice gave a notice the rules require (or logged the
    breach for HHS). The practice notice is met by its delivery, not by hand."""
    require_manager(claims)
    column = DONE_COLUMNS.get(clock_name)
    if column is None:
        raise IncidentInputInvalid("that clock is not closed by hand")
    when = aware(done_at, "date") if done_at else clock.now()
    if when > clock.now():
        raise IncidentInputInvalid("a notice cannot be recorded in the future")
    async with db.transaction(claims) as conn:
        current = await _fetch(conn, incident_id)
        if when < current.discovered_at:
            raise IncidentInputInvalid("a notice cannot precede the discovery")
        await conn.execute(
            f"update incidents.incidents set {column} = %s where id = %s",
            (when, incident_id),
        )
        return await _fetch(conn, incident_id)


async def close(
    db: Database, clock: Clock, claims: Claims, incident_id: uuid.UUID
) -> Incident:
    """Close an assessed incident; its clocks then stop escalating."""
    require_manager(claims)
    async with db.transaction(claims) as conn:
        current = await _fetch(conn, incident_id)
        if current.status == "closed":
            return current
        if current.conclusion is None:
            raise IncidentConflict("assess the incident before closing it")
        await conn.execute(
            "update incidents.incidents set status = 'closed', closed_at = %s "
            "where id = %s",
            (clock.now(), incident_id),
        )
        return await _fetch(conn, incident_id)


async def affected_patients(
    db: Database, records: Records, claims: Claims, incident_id: uuid.UUID
) -> list[Patient]:
    """The affected patients' demographics, read through the records service so
    that each read is recorded with its purpose and reason."""
    incident = await get_incident(db, claims, incident_id)
    if not incident.affected_patient_ids:
        return []
    audited = dataclasses.replace(claims, purpose_of_use="HOPERAT", reason=NAMES_REASON)
    return await records.read_patients(audited, list(incident.affected_patient_ids))
