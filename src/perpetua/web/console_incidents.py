"""Console pages for alerts and incidents: the practice's owners and managers
triage alerts (with their audit-log evidence), open and work incidents (risk
assessment, affected patients, the notice to the practice, the clocks), and
Perpetua's staff see a queue across practices without PHI.

Each handler calls the same service function as its API twin, so the console
and the API cannot disagree. Every console page an owner or manager opens shows
the practice's overdue clocks as a banner (`console_gate`); the staff queue shows
them across practices. Forms are CSRF-checked; times typed into forms are UTC,
as the labels say.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from perpetua.access.claims import Claims
from perpetua.errors import PerpetuaError
from perpetua.identity.sessions import Principal
from perpetua.incidents import alerts, notice, staff
from perpetua.incidents import service as incidents
from perpetua.incidents.clocks import LABELS, ClockName, describe_remaining
from perpetua.incidents.errors import IncidentInputInvalid
from perpetua.incidents.guards import require_manager, require_staff
from perpetua.incidents.models import (
    CONCLUSIONS,
    FACTORS,
    PHI_KINDS,
    Incident,
    overdue_clocks,
)
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.console_gate import member_or_signin
from perpetua.web.context import services
from perpetua.web.csrf import check_csrf

router = APIRouter(include_in_schema=False)

FACTOR_QUESTIONS = {
    "nature_extent": "Nature and extent of the PHI involved (kinds of identifiers, "
    "likelihood of re-identification)",
    "unauthorized_person": "The unauthorized person who used the PHI or to whom it "
    "was disclosed",
    "acquired_or_viewed": "Whether the PHI was actually acquired or viewed",
    "mitigation": "The extent to which the risk to the PHI has been mitigated",
}
STATE_WORDS = {
    "met": "met",
    "late": "met late",
    "running": "running",
    "overdue": "OVERDUE",
    "not_required": "not required",
}


async def _caller(request: Request) -> tuple[Principal, Claims] | Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    return principal, request_claims(request, principal)


def _utc(value: str, field: str) -> dt.datetime:
    """A `datetime-local` value, read as UTC (the forms say so)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise IncidentInputInvalid(f"{field} must be a date and time") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def _optional_utc(value: str, field: str) -> dt.datetime | None:
    return _utc(value, field) if value.strip() else None


def _render(
    request: Request,
    template: str,
    principal: Principal,
    http_status: int = 200,
    **context: Any,
) -> Response:
    return page(
        request,
        template,
        http_status,
        principal=principal,
        now=services(request).clock.now(),
        remaining=describe_remaining,
        state_words=STATE_WORDS,
        **context,
    )


# -- alerts ---------------------------------------------------------------------


@router.get("/alerts")
async def alert_list(request: Request) -> Response:
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    svc = services(request)
    found = await alerts.list_alerts(svc.db, claims)
    return _render(request, "alerts_list.html", principal, alerts=found)


async def _alert_page(
    request: Request,
    principal: Principal,
    claims: Claims,
    alert_id: uuid.UUID,
    http_status: int = 200,
    error: str | None = None,
) -> Response:
    db = services(request).db
    found = await alerts.get_alert(db, claims, alert_id)
    events = await alerts.evidence(db, claims, alert_id)
    return _render(
        request,
        "alerts_detail.html",
        principal,
        http_status,
        alert=found,
        evidence=events,
        error=error,
    )


@router.get("/alerts/{alert_id}")
async def alert_detail(request: Request, alert_id: uuid.UUID) -> Response:
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    return await _alert_page(request, *caller, alert_id)


@router.post("/alerts/{alert_id}/triage")
async def alert_triage(
    request: Request,
    alert_id: uuid.UUID,
    step: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    if step not in ("acknowledge", "dismiss"):
        raise IncidentInputInvalid("choose acknowledge or dismiss")
    try:
        await alerts.triage(
            services(request).db,
            claims,
            alert_id,
            "acknowledge" if step == "acknowledge" else "dismiss",
        )
    except PerpetuaError as exc:
        if exc.status == 404 or exc.status == 403:
            raise
        return await _alert_page(
            request, principal, claims, alert_id, exc.status, exc.detail
        )
    return RedirectResponse(f"/alerts/{alert_id}", 303)


@router.post("/alerts/{alert_id}/escalate")
async def alert_escalate(
    request: Request, alert_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    svc = services(request)
    try:
        made = await alerts.escalate(svc.db, svc.clock, claims, alert_id)
    except PerpetuaError as exc:
        if exc.status == 404 or exc.status == 403:
            raise
        return await _alert_page(
            request, principal, claims, alert_id, exc.status, exc.detail
        )
    return RedirectResponse(f"/incidents/{made}", 303)


# -- incidents ------------------------------------------------------------------


@router.get("/incidents")
async def incident_list(request: Request) -> Response:
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    return await _list_page(request, *caller)


async def _list_page(
    request: Request,
    principal: Principal,
    claims: Claims,
    http_status: int = 200,
    error: str | None = None,
) -> Response:
    svc = services(request)
    found = await incidents.list_incidents(svc.db, claims)
    return _render(
        request,
        "incidents_list.html",
        principal,
        http_status,
        incidents=found,
        conclusions=CONCLUSIONS,
        error=error,
    )


@router.post("/incidents")
async def incident_open(
    request: Request,
    discovered_at: str = Form(""),
    description: str = Form(""),
    window_from: str = Form(""),
    window_to: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    svc = services(request)
    try:
        require_manager(claims)
        made = await incidents.open_by_hand(
            svc.db,
            svc.clock,
            claims,
            incidents.NewIncident(
                discovered_at=_utc(discovered_at, "discovery time"),
                description=description or None,
                window_from=_optional_utc(window_from, "window start"),
                window_to=_optional_utc(window_to, "window end"),
            ),
        )
    except PerpetuaError as exc:
        if exc.status == 403:
            raise
        return await _list_page(request, principal, claims, exc.status, exc.detail)
    return RedirectResponse(f"/incidents/{made}", 303)


async def _incident_page(
    request: Request,
    principal: Principal,
    claims: Claims,
    incident_id: uuid.UUID,
    http_status: int = 200,
    error: str | None = None,
    notice_text: str | None = None,
) -> Response:
    svc = services(request)
    found: Incident = await incidents.get_incident(svc.db, claims, incident_id)
    return _render(
        request,
        "incidents_detail.html",
        principal,
        http_status,
        incident=found,
        deadlines=found.deadlines(),
        factors=FACTORS,
        questions=FACTOR_QUESTIONS,
        conclusions=CONCLUSIONS,
        phi_kinds=PHI_KINDS,
        hand_clocks=[(c, LABELS[c]) for c in incidents.DONE_COLUMNS],
        error=error,
        notice=notice_text,
    )


@router.get("/incidents/{incident_id}")
async def incident_detail(
    request: Request, incident_id: uuid.UUID, done: str = ""
) -> Response:
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    said = {
        "notice": "The notice is queued for the practice's owners and managers.",
        "assessed": "The risk assessment is saved.",
        "affected": "The affected patients were recomputed from the audit log.",
        "recorded": "The notice is recorded.",
        "closed": "The incident is closed.",
    }.get(done)
    return await _incident_page(request, *caller, incident_id, notice_text=said)


async def _incident_step(
    request: Request, incident_id: uuid.UUID, csrf: str, step: Any, done: str
) -> Response:
    """Run one step on an incident; on a refusal show the page with the reason."""
    check_csrf(request, csrf)
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    try:
        await step(claims)
    except PerpetuaError as exc:
        if exc.status in (403, 404):
            raise
        return await _incident_page(
            request, principal, claims, incident_id, exc.status, exc.detail
        )
    return RedirectResponse(f"/incidents/{incident_id}?done={done}", 303)


@router.post("/incidents/{incident_id}/affected")
async def incident_affected(
    request: Request,
    incident_id: uuid.UUID,
    window_from: str = Form(""),
    window_to: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        await incidents.compute_affected(
            svc.db,
            svc.clock,
            claims,
            incident_id,
            window_from=_optional_utc(window_from, "window start"),
            window_to=_optional_utc(window_to, "window end"),
        )

    return await _incident_step(request, incident_id, csrf, step, "affected")


@router.post("/incidents/{incident_id}/assessment")
async def incident_assess(request: Request, incident_id: uuid.UUID) -> Response:
    svc = services(request)
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    async def step(claims: Claims) -> None:
        count = text("largest_state_count").strip()
        if count and not count.isdigit():
            raise IncidentInputInvalid("the count of residents must be a number")
        await incidents.assess(
            svc.db,
            svc.clock,
            claims,
            incident_id,
            incidents.Assessment(
                nature_extent=text("nature_extent"),
                unauthorized_person=text("unauthorized_person"),
                acquired_or_viewed=text("acquired_or_viewed"),
                mitigation=text("mitigation"),
                conclusion=text("conclusion"),
                phi_kinds=tuple(
                    str(k) for k in form.getlist("phi_kinds") if isinstance(k, str)
                ),
                description=text("description") or None,
                contact=text("contact") or None,
                largest_state_count=int(count) if count else None,
            ),
        )

    return await _incident_step(
        request, incident_id, text("csrf_token"), step, "assessed"
    )


@router.post("/incidents/{incident_id}/notice")
async def incident_notice(
    request: Request, incident_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        require_manager(claims)
        await notice.send_practice_notice(
            svc.db, svc.clock, claims, incident_id, svc.settings.origin
        )

    return await _incident_step(request, incident_id, csrf, step, "notice")


@router.post("/incidents/{incident_id}/done")
async def incident_done(
    request: Request,
    incident_id: uuid.UUID,
    clock_name: str = Form("", alias="clock"),
    done_at: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        if clock_name not in incidents.DONE_COLUMNS:
            raise IncidentInputInvalid("that clock is not closed by hand")
        name: ClockName = clock_name
        await incidents.record_done(
            svc.db,
            svc.clock,
            claims,
            incident_id,
            name,
            _optional_utc(done_at, "date"),
        )

    return await _incident_step(request, incident_id, csrf, step, "recorded")


@router.post("/incidents/{incident_id}/close")
async def incident_close(
    request: Request, incident_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        await incidents.close(svc.db, svc.clock, claims, incident_id)

    return await _incident_step(request, incident_id, csrf, step, "closed")


@router.get("/incidents/{incident_id}/patients")
async def incident_patients(request: Request, incident_id: uuid.UUID) -> Response:
    """The affected patients' names: an audited read, for owners and managers."""
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    svc = services(request)
    assert svc.records is not None
    found = await incidents.affected_patients(svc.db, svc.records, claims, incident_id)
    return _render(
        request,
        "incidents_patients.html",
        principal,
        incident_id=incident_id,
        patients=found,
    )


# -- Perpetua's staff -----------------------------------------------------------


async def _staff_page(
    request: Request,
    principal: Principal,
    claims: Claims,
    http_status: int = 200,
    error: str | None = None,
    notice_text: str | None = None,
) -> Response:
    svc = services(request)
    queue = await staff.incident_queue(svc.db, claims)
    return _render(
        request,
        "incidents_staff.html",
        principal,
        http_status,
        alerts=await staff.alert_queue(svc.db, claims),
        incidents=queue,
        incident_alarm=overdue_clocks(queue, svc.clock.now()),
        error=error,
        notice=notice_text,
    )


@router.get("/staff/incidents")
async def staff_queue(request: Request, done: str = "") -> Response:
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    require_staff(caller[1])
    said = {
        "opened": "The incident is open.",
        "notice": "The notice is queued for the practice's owners and managers.",
    }.get(done)
    return await _staff_page(request, *caller, notice_text=said)


async def _staff_step(request: Request, csrf: str, step: Any, done: str) -> Response:
    check_csrf(request, csrf)
    caller = await _caller(request)
    if isinstance(caller, Response):
        return caller
    principal, claims = caller
    require_staff(claims)
    try:
        await step(claims)
    except PerpetuaError as exc:
        return await _staff_page(request, principal, claims, exc.status, exc.detail)
    return RedirectResponse(f"/staff/incidents?done={done}", 303)


@router.post("/staff/incidents")
async def staff_open(
    request: Request,
    practice_id: str = Form(""),
    alert_id: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        try:
            practice = uuid.UUID(practice_id.strip())
            alert = uuid.UUID(alert_id.strip()) if alert_id.strip() else None
        except ValueError:
            raise IncidentInputInvalid("give a practice id (and an alert id)") from None
        await staff.open_for_practice(
            svc.db, svc.clock, claims, practice, alert_id=alert
        )

    return await _staff_step(request, csrf, step, "opened")


@router.post("/staff/incidents/{incident_id}/notice")
async def staff_notice(
    request: Request, incident_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    svc = services(request)

    async def step(claims: Claims) -> None:
        await notice.send_practice_notice(
            svc.db, svc.clock, claims, incident_id, svc.settings.origin
        )

    return await _staff_step(request, csrf, step, "notice")
