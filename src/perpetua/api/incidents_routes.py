"""JSON API for alert triage and incidents (owners and managers of a practice),
and the staff queue across practices (Perpetua's staff, no PHI). Each route is a
thin translation to one call of the incidents services, which the console calls
too; the database decides every access."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request

from perpetua.api.incidents_schemas import (
    AffectedIn,
    AffectedPatientOut,
    AlertDetailOut,
    AlertOut,
    AssessmentIn,
    ClockDoneIn,
    ClockOut,
    EvidenceOut,
    IncidentIn,
    IncidentOut,
    NoticeOut,
    StaffAlertOut,
    StaffIncidentIn,
    StaffIncidentOut,
)
from perpetua.api.schemas import Problem
from perpetua.clock import Clock
from perpetua.identity.sessions import Principal
from perpetua.incidents import alerts, notice, staff
from perpetua.incidents import service as incidents
from perpetua.incidents.errors import IncidentNotFound
from perpetua.incidents.guards import require_staff
from perpetua.incidents.models import Alert, Incident, StaffIncident
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=_PROBLEMS, tags=["incidents"])
Authed = Annotated[Principal, Depends(api_principal)]
# The clocks the practice closes by hand; the practice notice closes on delivery.
HandClock = Literal["individuals", "hhs", "media", "hhs_annual_log"]


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert, from_attributes=True)


def incident_out(incident: Incident, clock: Clock) -> IncidentOut:
    now = clock.now()
    fields = {
        name: getattr(incident, name)
        for name in IncidentOut.model_fields
        if name not in ("clocks", "affected_count")
    }
    return IncidentOut(
        **fields,
        affected_count=incident.affected_count,
        clocks=[ClockOut.of(d, now) for d in incident.deadlines()],
    )


def staff_incident_out(incident: StaffIncident, clock: Clock) -> StaffIncidentOut:
    now = clock.now()
    fields = {
        name: getattr(incident, name)
        for name in StaffIncidentOut.model_fields
        if name != "clocks"
    }
    return StaffIncidentOut(
        **fields, clocks=[ClockOut.of(d, now) for d in incident.deadlines()]
    )


# -- alerts ---------------------------------------------------------------------


@router.get("/alerts")
async def list_alerts(principal: Authed, request: Request) -> list[AlertOut]:
    """The practice's alerts, open and acknowledged first (owners and managers)."""
    found = await alerts.list_alerts(
        services(request).db, request_claims(request, principal)
    )
    return [alert_out(a) for a in found]


@router.get("/alerts/{alert_id}")
async def get_alert(
    alert_id: uuid.UUID, principal: Authed, request: Request
) -> AlertDetailOut:
    """One alert with its evidence: the audit events it names (reading them is
    recorded as a view of the audit log)."""
    db = services(request).db
    claims = request_claims(request, principal)
    found = await alerts.get_alert(db, claims, alert_id)
    events = await alerts.evidence(db, claims, alert_id)
    return AlertDetailOut(
        **alert_out(found).model_dump(),
        evidence=[EvidenceOut.model_validate(e, from_attributes=True) for e in events],
    )


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(
    alert_id: uuid.UUID, principal: Authed, request: Request
) -> AlertOut:
    """Mark an open alert as seen; it stays in the list until dismissed or
    escalated."""
    found = await alerts.triage(
        services(request).db,
        request_claims(request, principal),
        alert_id,
        "acknowledge",
    )
    return alert_out(found)


@router.post("/alerts/{alert_id}/dismiss")
async def dismiss_alert(
    alert_id: uuid.UUID, principal: Authed, request: Request
) -> AlertOut:
    """Dismiss an alert that is not an incident; the decision is kept."""
    found = await alerts.triage(
        services(request).db, request_claims(request, principal), alert_id, "dismiss"
    )
    return alert_out(found)


@router.post("/alerts/{alert_id}/escalate", status_code=201)
async def escalate_alert(
    alert_id: uuid.UUID, principal: Authed, request: Request
) -> IncidentOut:
    """Open the incident for an alert; escalating again returns the same one."""
    svc = services(request)
    claims = request_claims(request, principal)
    incident_id = await alerts.escalate(svc.db, svc.clock, claims, alert_id)
    found = await incidents.get_incident(svc.db, claims, incident_id)
    return incident_out(found, svc.clock)


# -- incidents ------------------------------------------------------------------


@router.get("/incidents")
async def list_incidents(principal: Authed, request: Request) -> list[IncidentOut]:
    """The practice's incidents with their clocks (owners and managers)."""
    svc = services(request)
    found = await incidents.list_incidents(svc.db, request_claims(request, principal))
    return [incident_out(i, svc.clock) for i in found]


@router.post("/incidents", status_code=201)
async def open_incident(
    body: IncidentIn, principal: Authed, request: Request
) -> IncidentOut:
    """Open an incident by hand, stating when it was discovered."""
    svc = services(request)
    claims = request_claims(request, principal)
    made = await incidents.open_by_hand(
        svc.db, svc.clock, claims, incidents.NewIncident(**body.model_dump())
    )
    return incident_out(await incidents.get_incident(svc.db, claims, made), svc.clock)


@router.get("/incidents/{incident_id}")
async def get_incident(
    incident_id: uuid.UUID, principal: Authed, request: Request
) -> IncidentOut:
    """One incident, its assessment, affected patients (ids) and clocks."""
    svc = services(request)
    found = await incidents.get_incident(
        svc.db, request_claims(request, principal), incident_id
    )
    return incident_out(found, svc.clock)


@router.post("/incidents/{incident_id}/affected")
async def compute_affected(
    incident_id: uuid.UUID, body: AffectedIn, principal: Authed, request: Request
) -> IncidentOut:
    """Recompute the affected patients from the audit log, optionally over a
    corrected window."""
    svc = services(request)
    found = await incidents.compute_affected(
        svc.db,
        svc.clock,
        request_claims(request, principal),
        incident_id,
        window_from=body.window_from,
        window_to=body.window_to,
    )
    return incident_out(found, svc.clock)


@router.get("/incidents/{incident_id}/patients")
async def affected_patients(
    incident_id: uuid.UUID, principal: Authed, request: Request
) -> list[AffectedPatientOut]:
    """The affected patients' names; each read is recorded in the audit log."""
    svc = services(request)
    assert svc.records is not None
    found = await incidents.affected_patients(
        svc.db, svc.records, request_claims(request, principal), incident_id
    )
    return [AffectedPatientOut(id=p.id, name=p.name) for p in found]


@router.put("/incidents/{incident_id}/assessment")
async def assess(
    incident_id: uuid.UUID, body: AssessmentIn, principal: Authed, request: Request
) -> IncidentOut:
    """Record the four-factor risk assessment (45 CFR 164.402) and conclusion."""
    svc = services(request)
    data = body.model_dump()
    data["phi_kinds"] = tuple(data["phi_kinds"])
    found = await incidents.assess(
        svc.db,
        svc.clock,
        request_claims(request, principal),
        incident_id,
        incidents.Assessment(**data),
    )
    return incident_out(found, svc.clock)


@router.post("/incidents/{incident_id}/notice", status_code=201)
async def send_notice(
    incident_id: uuid.UUID, principal: Authed, request: Request
) -> NoticeOut:
    """Send the practice the 164.410 notice through the outbox."""
    svc = services(request)
    sent = await notice.send_practice_notice(
        svc.db,
        svc.clock,
        request_claims(request, principal),
        incident_id,
        svc.settings.origin,
    )
    return NoticeOut.model_validate(sent, from_attributes=True)


@router.post("/incidents/{incident_id}/clocks/{clock_name}/done")
async def record_done(
    incident_id: uuid.UUID,
    clock_name: HandClock,
    body: ClockDoneIn,
    principal: Authed,
    request: Request,
) -> IncidentOut:
    """Record when the practice notified individuals, HHS or the media, or logged
    the breach for HHS's annual report."""
    svc = services(request)
    found = await incidents.record_done(
        svc.db,
        svc.clock,
        request_claims(request, principal),
        incident_id,
        clock_name,
        body.done_at,
    )
    return incident_out(found, svc.clock)


@router.post("/incidents/{incident_id}/close")
async def close_incident(
    incident_id: uuid.UUID, principal: Authed, request: Request
) -> IncidentOut:
    """Close an assessed incident."""
    svc = services(request)
    found = await incidents.close(
        svc.db, svc.clock, request_claims(request, principal), incident_id
    )
    return incident_out(found, svc.clock)


# -- Perpetua's staff -----------------------------------------------------------


@router.get("/staff/alerts", tags=["staff"])
async def staff_alerts(principal: Authed, request: Request) -> list[StaffAlertOut]:
    """Alerts across practices: detector, severity, counts; no PHI."""
    found = await staff.alert_queue(
        services(request).db, request_claims(request, principal)
    )
    return [StaffAlertOut.model_validate(a, from_attributes=True) for a in found]


@router.get("/staff/incidents", tags=["staff"])
async def staff_incidents(
    principal: Authed, request: Request
) -> list[StaffIncidentOut]:
    """Incidents across practices with their clocks: ids, counts, dates; no PHI."""
    svc = services(request)
    found = await staff.incident_queue(svc.db, request_claims(request, principal))
    return [staff_incident_out(i, svc.clock) for i in found]


@router.post("/staff/incidents", status_code=201, tags=["staff"])
async def staff_open_incident(
    body: StaffIncidentIn, principal: Authed, request: Request
) -> StaffIncidentOut:
    """Open an incident for a practice, from its alert or by hand."""
    svc = services(request)
    claims = request_claims(request, principal)
    made = await staff.open_for_practice(
        svc.db,
        svc.clock,
        claims,
        body.practice_id,
        alert_id=body.alert_id,
        discovered_at=body.discovered_at,
    )
    for found in await staff.incident_queue(svc.db, claims):
        if found.id == made:
            return staff_incident_out(found, svc.clock)
    raise IncidentNotFound()


@router.post("/staff/incidents/{incident_id}/notice", status_code=201, tags=["staff"])
async def staff_send_notice(
    incident_id: uuid.UUID, principal: Authed, request: Request
) -> NoticeOut:
    """Send a practice its 164.410 notice; the message is not shown to staff."""
    svc = services(request)
    claims = request_claims(request, principal)
    require_staff(claims)
    sent = await notice.send_practice_notice(
        svc.db,
        svc.clock,
        claims,
        incident_id,
        svc.settings.origin,
    )
    return NoticeOut.model_validate(sent, from_attributes=True)
