"""JSON API for PHI records: patients, providers, appointments, schedules,
coverage, calls, break-glass and the patient access report. Each route is a thin
translation to one records-service call; the service and the database decide."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from perpetua.access.claims import SessionClaims
from perpetua.api.records_schemas import (
    AccessEventOut,
    AppointmentIn,
    AppointmentOut,
    AppointmentPatch,
    BreakGlassIn,
    BreakGlassOut,
    CallIn,
    CallOut,
    CoverageIn,
    CoverageOut,
    CoverageSearchIn,
    PatientIn,
    PatientOut,
    PatientSearchIn,
    ProviderIn,
    ProviderOut,
)
from perpetua.api.schemas import Problem
from perpetua.audit.viewer import member_names
from perpetua.identity.sessions import Principal
from perpetua.records import service as records
from perpetua.records.service import Records
from perpetua.web.claims import api_session_reader, request_claims
from perpetua.web.context import api_principal, services
from perpetua.web.csv_export import (
    ACCESS_REPORT_COLUMNS,
    SCHEDULE_COLUMNS,
    access_report_rows,
    csv_response,
    schedule_rows,
)

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=_PROBLEMS, tags=["records"])
# Fixed paths such as /patients/export.csv must be matched before /patients/{id}:
# they live on a router the application includes first.
exports = APIRouter(prefix="/api/v1", responses=_PROBLEMS, tags=["exports"])
Authed = Annotated[Principal, Depends(api_principal)]
# Reads of one record name their caller by session and let the database resolve
# it inside the read's own transaction: one round trip for session, claims, audit
# and rows. Routes with query parameters keep `Authed`, so that a caller without
# a session hears "sign in" before any complaint about the parameters.
Reader = Annotated[SessionClaims, Depends(api_session_reader)]


def _records(request: Request) -> Records:
    found = services(request).records
    assert found is not None
    return found


Out = TypeVar("Out", bound=BaseModel)


def _out(model: type[Out], value: Any) -> Out:
    # Read attributes directly: dataclasses.asdict deep-copies every field.
    return model.model_validate(value, from_attributes=True)


@router.post("/providers", status_code=201)
async def create_provider(
    body: ProviderIn, principal: Authed, request: Request
) -> ProviderOut:
    """Add a provider whose schedule the practice keeps (owners and managers)."""
    made = await _records(request).create_provider(
        request_claims(request, principal), body.display_name, body.npi
    )
    return _out(ProviderOut, made)


@router.get("/providers")
async def list_providers(principal: Authed, request: Request) -> list[ProviderOut]:
    """The practice's providers."""
    found = await _records(request).list_providers(request_claims(request, principal))
    return [_out(ProviderOut, p) for p in found]


@router.post("/patients", status_code=201)
async def create_patient(
    body: PatientIn, principal: Authed, request: Request
) -> PatientOut:
    """Register a patient (demographics: create)."""
    made = await _records(request).create_patient(
        request_claims(request, principal), records.NewPatient(**body.model_dump())
    )
    return _out(PatientOut, made)


@router.post("/patients/search")
async def search_patients(
    body: PatientSearchIn, principal: Authed, request: Request
) -> list[PatientOut]:
    """Exact search by phone, or by name and date of birth (recorded as a search)."""
    found = await _records(request).search_patients(
        request_claims(request, principal),
        phone=body.phone,
        name=body.name,
        birth_date=body.birth_date,
    )
    return [_out(PatientOut, p) for p in found]


@router.get("/patients/{patient_id}")
async def get_patient(
    patient_id: uuid.UUID, caller: Reader, request: Request
) -> PatientOut:
    """One patient's demographics (recorded as a view)."""
    found = await _records(request).get_patient(caller, patient_id)
    return _out(PatientOut, found)


@router.put("/patients/{patient_id}")
async def update_patient(
    patient_id: uuid.UUID, body: PatientIn, principal: Authed, request: Request
) -> PatientOut:
    """Replace a patient's demographics (demographics: update)."""
    found = await _records(request).update_patient(
        request_claims(request, principal),
        patient_id,
        records.NewPatient(**body.model_dump()),
    )
    return _out(PatientOut, found)


@router.post("/appointments", status_code=201)
async def create_appointment(
    body: AppointmentIn, principal: Authed, request: Request
) -> AppointmentOut:
    """Book an appointment (schedule: create)."""
    made = await _records(request).create_appointment(
        request_claims(request, principal),
        records.NewAppointment(**body.model_dump()),
    )
    return _out(AppointmentOut, made)


@router.get("/appointments/{appointment_id}")
async def get_appointment(
    appointment_id: uuid.UUID, caller: Reader, request: Request
) -> AppointmentOut:
    """One appointment (recorded as a view)."""
    found = await _records(request).get_appointment(caller, appointment_id)
    return _out(AppointmentOut, found)


@router.patch("/appointments/{appointment_id}")
async def update_appointment(
    appointment_id: uuid.UUID,
    body: AppointmentPatch,
    principal: Authed,
    request: Request,
) -> AppointmentOut:
    """Move, confirm, cancel or complete an appointment (schedule: update)."""
    changes = body.model_dump(exclude_unset=True)
    found = await _records(request).update_appointment(
        request_claims(request, principal), appointment_id, changes
    )
    return _out(AppointmentOut, found)


@router.get("/schedule")
async def schedule(
    principal: Authed,
    request: Request,
    day: Annotated[dt.date, Query(description="First day, YYYY-MM-DD (UTC)")],
    provider_id: uuid.UUID | None = None,
    days: Annotated[int, Query(ge=1, le=93)] = 1,
) -> list[AppointmentOut]:
    """The day's schedule, for one provider or all."""
    found = await _records(request).schedule(
        request_claims(request, principal),
        provider_id=provider_id,
        day=day,
        days=days,
    )
    return [_out(AppointmentOut, a) for a in found]


@exports.get(
    "/schedule/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_schedule(
    principal: Authed,
    request: Request,
    day: Annotated[dt.date, Query(description="First day, YYYY-MM-DD (UTC)")],
    provider_id: uuid.UUID | None = None,
    days: Annotated[int, Query(ge=1, le=93)] = 1,
) -> Response:
    """The schedule as CSV (schedule: export; recorded as an export)."""
    found = await _records(request).schedule(
        request_claims(request, principal),
        provider_id=provider_id,
        day=day,
        days=days,
        export=True,
    )
    return csv_response(SCHEDULE_COLUMNS, schedule_rows(found), f"schedule-{day}.csv")


@router.put("/patients/{patient_id}/coverage")
async def put_coverage(
    patient_id: uuid.UUID, body: CoverageIn, principal: Authed, request: Request
) -> CoverageOut:
    """Record or replace a patient's insurance coverage (insurance: update)."""
    saved = await _records(request).put_coverage(
        request_claims(request, principal),
        patient_id,
        records.CoverageInput(**body.model_dump()),
    )
    return _out(CoverageOut, saved)


@router.get("/patients/{patient_id}/coverage")
async def get_coverage(
    patient_id: uuid.UUID, caller: Reader, request: Request
) -> list[CoverageOut]:
    """A patient's insurance coverage (recorded as a view)."""
    found = await _records(request).coverages(caller, patient_id=patient_id)
    return [_out(CoverageOut, c) for c in found]


@router.post("/coverage/search")
async def search_coverage(
    body: CoverageSearchIn, principal: Authed, request: Request
) -> list[CoverageOut]:
    """Find coverage by exact member ID (recorded as a search)."""
    found = await _records(request).coverages(
        request_claims(request, principal), member_id=body.member_id
    )
    return [_out(CoverageOut, c) for c in found]


@router.post("/calls", status_code=201)
async def create_call(body: CallIn, principal: Authed, request: Request) -> CallOut:
    """Record a call (agents and integrations)."""
    made = await _records(request).create_call(
        request_claims(request, principal), records.NewCall(**body.model_dump())
    )
    return _out(CallOut, made)


@router.get("/calls")
async def list_calls(
    principal: Authed,
    request: Request,
    since: dt.datetime,
    until: dt.datetime,
) -> list[CallOut]:
    """Calls in a time range, newest first (at most 500)."""
    found = await _records(request).calls(
        request_claims(request, principal), since=since, until=until
    )
    return [_out(CallOut, c) for c in found]


@router.get("/calls/{call_id}")
async def get_call(call_id: uuid.UUID, caller: Reader, request: Request) -> CallOut:
    """One call (recorded as a view)."""
    found = await _records(request).calls(caller, ids=[call_id])
    return _out(CallOut, found[0])


@router.post("/patients/{patient_id}/break-glass", status_code=201)
async def break_glass(
    patient_id: uuid.UUID, body: BreakGlassIn, principal: Authed, request: Request
) -> BreakGlassOut:
    """Open emergency access to one patient outside your role, for a limited time.
    Then send `X-Purpose-Of-Use: BTG` with each request; the owners are told."""
    expires = await _records(request).open_break_glass(
        request_claims(request, principal, reason=body.reason),
        patient_id,
        body.reason,
        body.minutes,
    )
    return BreakGlassOut(patient_id=patient_id, expires_at=expires)


@router.get("/patients/{patient_id}/access-report")
async def access_report(
    patient_id: uuid.UUID, principal: Authed, request: Request
) -> list[AccessEventOut]:
    """Every recorded access to one patient's records, newest first: who, when,
    what, why, with what outcome (owners and managers; recorded as a view of the
    audit log naming the patient)."""
    claims = request_claims(request, principal)
    found = await _records(request).access_report(claims, patient_id)
    names = await member_names(services(request).db, claims)
    return [
        _out(AccessEventOut, e).model_copy(update={"actor_name": names.get(e.actor_id)})
        for e in found
    ]


_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}


@router.delete("/patients/{patient_id}", status_code=204)
async def delete_patient(
    patient_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Delete a patient with no remaining appointments, coverage or calls."""
    await _records(request).delete(
        request_claims(request, principal), "demographics", "patient", patient_id
    )
    return Response(status_code=204)


@exports.get("/patients/export.csv", response_class=Response, responses=_CSV)
async def export_patients(principal: Authed, request: Request) -> Response:
    """All the practice's patients as CSV (demographics: export)."""
    found = await _records(request).export_patients(request_claims(request, principal))
    rows = [[p.id, p.name, p.birth_date, p.phone, p.ehr_ref] for p in found]
    header = ("patient_id", "name", "birth_date", "phone", "ehr_ref")
    return csv_response(header, rows, "patients.csv")


@exports.get(
    "/patients/{patient_id}/access-report.csv", response_class=Response, responses=_CSV
)
async def access_report_csv(
    patient_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """The patient access report as CSV, for answering the patient (owners and
    managers; recorded as an export of the audit log naming the patient)."""
    claims = request_claims(request, principal)
    found = await _records(request).access_report(claims, patient_id, "export")
    names = await member_names(services(request).db, claims)
    response = csv_response(
        ACCESS_REPORT_COLUMNS, access_report_rows(found, names), "access-report.csv"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.delete("/appointments/{appointment_id}", status_code=204)
async def delete_appointment(
    appointment_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Delete an appointment entered in error (cancel it otherwise)."""
    await _records(request).delete(
        request_claims(request, principal), "schedule", "appointment", appointment_id
    )
    return Response(status_code=204)


@router.delete("/coverage/{coverage_id}", status_code=204)
async def delete_coverage(
    coverage_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Delete a coverage record."""
    await _records(request).delete(
        request_claims(request, principal), "insurance", "coverage", coverage_id
    )
    return Response(status_code=204)


@exports.get("/coverage/export.csv", response_class=Response, responses=_CSV)
async def export_coverage(principal: Authed, request: Request) -> Response:
    """All coverage records as CSV (insurance: export)."""
    found = await _records(request).export_coverages(request_claims(request, principal))
    rows = [
        [
            c.id,
            c.patient_id,
            c.payer,
            c.member_id,
            c.group_number,
            c.plan_type,
            c.copay_cents,
            c.deductible_status,
            c.last_verified_at,
        ]
        for c in found
    ]
    header = (
        "coverage_id",
        "patient_id",
        "payer",
        "member_id",
        "group_number",
        "plan_type",
        "copay_cents",
        "deductible_status",
        "last_verified_at",
    )
    return csv_response(header, rows, "coverage.csv")


@router.delete("/calls/{call_id}", status_code=204)
async def delete_call(
    call_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Delete a call record (owners)."""
    await _records(request).delete(
        request_claims(request, principal), "calls", "call", call_id
    )
    return Response(status_code=204)


@exports.get("/calls/export.csv", response_class=Response, responses=_CSV)
async def export_calls(
    principal: Authed, request: Request, since: dt.datetime, until: dt.datetime
) -> Response:
    """Calls in a range as CSV (calls: export)."""
    found = await _records(request).export_calls(
        request_claims(request, principal), since, until
    )
    rows = [
        [
            c.id,
            c.direction,
            c.caller_number,
            c.started_at,
            c.duration_seconds,
            c.patient_id,
        ]
        for c in found
    ]
    header = (
        "call_id",
        "direction",
        "caller_number",
        "started_at",
        "duration_seconds",
        "patient_id",
    )
    return csv_response(header, rows, "calls.csv")


@router.get("/patients/{patient_id}/clinical-documents")
async def clinical_documents(
    patient_id: uuid.UUID, principal: Authed, request: Request
) -> list[dict[str, Any]]:
    """Clinical documents: readable only when the practice enabled an agent that
    needs them, and then only by providers for their own patients."""
    return await _records(request).clinical_documents(
        request_claims(request, principal), patient_id
    )


AUDIT_COLUMNS = (
    "event_id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_role",
    "action",
    "resource_type",
    "resource_ids",
    "patient_ids",
    "purpose_of_use",
    "reason",
    "client_ip",
    "outcome",
    "request_id",
)


@exports.get(
    "/audit/export.csv", response_class=Response, responses=_CSV, tags=["audit"]
)
async def export_audit(
    principal: Authed, request: Request, since: dt.datetime, until: dt.datetime
) -> Response:
    """The practice's audit events as CSV (recorded as an export)."""
    found = await _records(request).audit_events(
        request_claims(request, principal), since, until, export=True
    )
    rows = [
        [
            e["id"],
            e["occurred_at"],
            e["actor_kind"],
            e["actor_id"],
            e["actor_role"],
            e["action"],
            e["resource_type"],
            " ".join(str(x) for x in e["resource_ids"]),
            " ".join(str(x) for x in e["patient_ids"]),
            e["purpose_of_use"],
            e["reason"],
            e["client_ip"],
            e["outcome"],
            e["request_id"],
        ]
        for e in found
    ]
    return csv_response(AUDIT_COLUMNS, rows, "audit-events.csv")
