"""Console pages for the practice's tamper-evident audit log (owners and managers).

`/audit` lists the practice's audit events, newest first, filtered by member,
patient, action, purpose of use and dates, one page at a time; each event opens
on a page that says whether a signed checkpoint proves it. The filtered list and
a patient's access report download as CSV. The page also shows the key that
proves the log and offers the verifiable archive (`GET /api/v1/audit/archive`).

Every page asks the database, through the same functions as the JSON API
(`audit/viewer.py`, `audit/export.py`), even for roles the console would not
offer it to: the database decides, and records each read, download and refusal
as an audit event. Reading the log shows which patients were accessed, by name,
so each page is recorded as a PHI read naming those patients.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from perpetua.audit import viewer
from perpetua.audit.export import export_archive
from perpetua.errors import (
    InvalidInput,
    PerpetuaError,
)
from perpetua.identity.sessions import Principal
from perpetua.records.vault import Vault
from perpetua.web.claims import PURPOSES, request_claims
from perpetua.web.console import page
from perpetua.web.console_audit_witness import audit_witness_section
from perpetua.web.console_gate import member_or_signin
from perpetua.web.context import services
from perpetua.web.csv_export import (
    ACCESS_REPORT_COLUMNS,
    AUDIT_EVENT_COLUMNS,
    access_report_rows,
    audit_event_rows,
    csv_response,
)

router = APIRouter(include_in_schema=False)

_ROLES = ("owner", "manager")
_PAGE = 50
_FILTERS = ("member", "patient", "action", "purpose", "from", "to")


def _vault(request: Request) -> Vault:
    found = services(request).records
    assert found is not None
    return found.vault


def _uuid(value: str, label: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput(f"{label} is not a valid identifier") from exc


def _day(value: str, label: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{label} is not a date (YYYY-MM-DD)") from exc


def parse_filters(query: Mapping[str, str]) -> viewer.EventFilters:
    """The console's filter form, checked as the API checks its parameters."""
    purpose = query.get("purpose") or None
    if purpose is not None and purpose not in PURPOSES:
        raise InvalidInput(f"purpose of use must be one of {', '.join(PURPOSES)}")
    since = _day(query.get("from", ""), "the first day")
    until = _day(query.get("to", ""), "the last day")
    return viewer.EventFilters(
        member=_uuid(query.get("member", ""), "the member"),
        patient=_uuid(query.get("patient", ""), "the patient"),
        action=query.get("action") or None,
        purpose=purpose,
        since=dt.datetime.combine(since, dt.time(), dt.UTC) if since else None,
        until=(
            dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
            if until
            else None
        ),
    )


def _log_identity(request: Request, principal: Principal) -> tuple[str, str] | None:
    if principal.practice_id is None or principal.role not in _ROLES:
        return None
    return viewer.verifier_key(_vault(request).keystore, principal.practice_id)


async def _audit_page(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    http_status: int = 200,
    **context: Any,
) -> Response:
    identity = _log_identity(request, principal) if http_status != 403 else None
    # Which signed checkpoint last left Perpetua, for the roles that see the log.
    witness_section = (
        await audit_witness_section(request, principal) if identity else Markup("")
    )
    query = {k: request.query_params.get(k, "") for k in _FILTERS}
    context.setdefault("events", [])
    context.setdefault("members", {})
    return page(
        request,
        "audit_log.html",
        http_status,
        principal=principal,
        origin=identity[0] if identity else None,
        verifier_key=identity[1] if identity else None,
        allowed=identity is not None,
        error=error,
        query=query,
        filter_query=urlencode({k: v for k, v in query.items() if v}),
        actions=viewer.ACTIONS,
        purposes=PURPOSES,
        witness_section=witness_section,
        **context,
    )


@router.get("/audit")
async def audit_log(request: Request) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    try:
        filters = parse_filters(request.query_params)
    except InvalidInput as exc:
        return await _audit_page(request, principal, error=exc.detail, http_status=422)

    # Asked of the database whatever the role: it refuses and records the attempt.
    claims = request_claims(request, principal)
    try:
        found = await viewer.list_events(
            services(request).db,
            _vault(request),
            claims,
            filters,
            cursor=request.query_params.get("cursor") or None,
            limit=_PAGE,
        )
    except PerpetuaError as exc:
        return await _audit_page(
            request, principal, error=_calm(exc), http_status=exc.status
        )
    members = await viewer.member_names(services(request).db, claims)
    return await _audit_page(
        request,
        principal,
        events=found.events,
        next_cursor=found.next_cursor,
        members=members,
        patient_filter=filters.patient,
    )


def _calm(exc: PerpetuaError) -> str:
    if exc.status == 403:
        return "Only owners and managers see the practice's audit log."
    return exc.detail


@router.get("/audit/events.csv")
async def audit_events_csv(request: Request) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    try:
        filters = parse_filters(request.query_params)
        found = await viewer.list_events(
            services(request).db,
            _vault(request),
            request_claims(request, principal),
            filters,
            limit=viewer.MAX_EXPORT,
            access="export",
        )
    except PerpetuaError as exc:
        return await _audit_page(
            request, principal, error=_calm(exc), http_status=exc.status
        )
    response = csv_response(
        AUDIT_EVENT_COLUMNS, audit_event_rows(found.events), "audit-events.csv"
    )
    response.headers["Cache-Control"] = "no-store"
    if found.next_cursor:
        response.headers["X-Audit-Export-Truncated"] = "true"
    return response


@router.get("/audit/events/{event_id}")
async def audit_event(request: Request, event_id: uuid.UUID) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    try:
        event, status = await viewer.event_detail(
            services(request).db,
            _vault(request),
            request_claims(request, principal),
            event_id,
        )
    except PerpetuaError as exc:
        return page(
            request,
            "audit_event.html",
            exc.status,
            principal=principal,
            error=_calm(exc),
            event=None,
        )
    return page(
        request,
        "audit_event.html",
        principal=principal,
        event=event,
        status=status,
        b64=viewer.b64,
        purposes=PURPOSES,
    )


@router.get("/patients/{patient_id}/access-report.csv")
async def access_report_csv(request: Request, patient_id: uuid.UUID) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    svc = services(request)
    assert svc.records is not None
    claims = request_claims(request, principal)
    try:
        found = await svc.records.access_report(claims, patient_id, "export")
    except PerpetuaError as exc:
        return page(
            request,
            "records_access_report.html",
            exc.status,
            principal=principal,
            patient_id=patient_id,
            events=[],
            names={},
            error=_calm(exc),
        )
    names = await viewer.member_names(svc.db, claims)
    response = csv_response(
        ACCESS_REPORT_COLUMNS, access_report_rows(found, names), "access-report.csv"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/audit/archive")
async def audit_archive(request: Request) -> Response:
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    svc = services(request)
    assert svc.records is not None
    try:
        archive = await export_archive(
            svc.db, svc.records.vault.keystore, request_claims(request, principal)
        )
    except PerpetuaError as exc:
        # The refusal is already recorded by the database; say it plainly.
        return await _audit_page(
            request, principal, error=exc.detail, http_status=exc.status
        )
    return Response(
        archive.data,
        media_type="application/jsonl",
        headers={
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "Cache-Control": "no-store",
        },
    )
