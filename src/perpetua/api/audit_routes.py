"""JSON API for the practice's own copy of its tamper-evident audit log.

`GET /api/v1/audit/archive` returns the sealed log as a JSON Lines archive that
`perpetua audit verify --archive FILE --key VKEY` checks offline. Owners and
managers only; the database decides and records the export (or the refusal) as
an audit event. `GET /api/v1/audit/fhir` returns the same events as FHIR R4
AuditEvent resources (NDJSON, shaped after IHE BALP), also recorded as an export.
Both hold patient identifiers: they are PHI.

The viewer's routes (`/events`, `/events.csv`, `/events/{id}`) list, export and
show the practice's events, each read recorded by the database with the patients
it showed; `/checkpoints` and `/proofs/*` serve the signed checkpoints and RFC
9162 inclusion and consistency proofs that `perpetua.audit.merkle.verify_*`
checks offline. The console's audit pages call the same functions
(`audit/viewer.py`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from perpetua.api.audit_schemas import (
    AuditEventDetailOut,
    AuditEventOut,
    AuditEventPageOut,
    CheckpointListOut,
    CheckpointOut,
    ConsistencyProofOut,
    InclusionProofOut,
    ProofStatusOut,
)
from perpetua.api.schemas import Problem
from perpetua.audit import viewer
from perpetua.audit.export import export_archive, export_fhir
from perpetua.identity.sessions import Principal
from perpetua.records.vault import Vault
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services
from perpetua.web.csv_export import AUDIT_EVENT_COLUMNS, audit_event_rows, csv_response

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 422, 503)
}

router = APIRouter(prefix="/api/v1/audit", responses=_PROBLEMS, tags=["audit"])

Authed = Annotated[Principal, Depends(api_principal)]

ARCHIVE_MEDIA_TYPE = "application/jsonl"
FHIR_MEDIA_TYPE = "application/fhir+ndjson"


@router.get(
    "/archive",
    response_class=Response,
    responses={200: {"content": {ARCHIVE_MEDIA_TYPE: {}}}},
)
async def audit_archive(principal: Authed, request: Request) -> Response:
    """The practice's sealed audit log, verifiable offline (recorded as an export)."""
    svc = services(request)
    assert svc.records is not None
    archive = await export_archive(
        svc.db, svc.records.vault.keystore, request_claims(request, principal)
    )
    return Response(
        archive.data,
        media_type=ARCHIVE_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "Cache-Control": "no-store",
            # The key to pin, from a second channel than the file it vouches for.
            "X-Audit-Verifier-Key": archive.verifier_key,
        },
    )


@router.get(
    "/fhir",
    response_class=Response,
    responses={200: {"content": {FHIR_MEDIA_TYPE: {}}}},
)
async def audit_fhir(principal: Authed, request: Request) -> Response:
    """The sealed audit log as FHIR R4 AuditEvent NDJSON (recorded as an export)."""
    svc = services(request)
    data = await export_fhir(svc.db, request_claims(request, principal))
    return Response(
        data,
        media_type=FHIR_MEDIA_TYPE,
        headers={
            "Content-Disposition": 'attachment; filename="audit-events.ndjson"',
            "Cache-Control": "no-store",
        },
    )


def _vault(request: Request) -> Vault:
    found = services(request).records
    assert found is not None
    return found.vault


Action = Literal[
    "view",
    "search",
    "create",
    "update",
    "delete",
    "export",
    "playback",
    "api_call",
    "break_glass",
]
Purpose = Literal["TREAT", "HPAYMT", "HOPERAT", "ETREAT", "BTG"]


def event_filters(
    member: Annotated[
        uuid.UUID | None, Query(description="the acting member's user id")
    ] = None,
    patient: Annotated[
        uuid.UUID | None, Query(description="events naming this patient")
    ] = None,
    action: Annotated[Action | None, Query()] = None,
    purpose: Annotated[Purpose | None, Query(description="purpose of use")] = None,
    since: Annotated[
        dt.date | None, Query(alias="from", description="first day (UTC), inclusive")
    ] = None,
    until: Annotated[
        dt.date | None, Query(alias="to", description="last day (UTC), inclusive")
    ] = None,
) -> viewer.EventFilters:
    return viewer.EventFilters(
        member=member,
        patient=patient,
        action=action,
        purpose=purpose,
        since=_day_start(since),
        until=_day_start(until + dt.timedelta(days=1)) if until else None,
    )


def _day_start(day: dt.date | None) -> dt.datetime | None:
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


Filters = Annotated[viewer.EventFilters, Depends(event_filters)]


@router.get("/events")
async def audit_events(
    principal: Authed,
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=viewer.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditEventPageOut:
    """The practice's audit events, newest first, filtered and paged by cursor.
    Owners and managers; recorded as a view of the audit log naming the patients
    shown."""
    page = await viewer.list_events(
        services(request).db,
        _vault(request),
        request_claims(request, principal),
        filters,
        cursor=cursor,
        limit=limit,
    )
    return AuditEventPageOut(
        events=[AuditEventOut.of(e) for e in page.events],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/events.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def audit_events_csv(
    principal: Authed, request: Request, filters: Filters
) -> Response:
    """The filtered events as CSV, newest first, at most 100,000 (recorded as an
    export of the audit log). `X-Audit-Export-Truncated: true` when more matched."""
    page = await viewer.list_events(
        services(request).db,
        _vault(request),
        request_claims(request, principal),
        filters,
        limit=viewer.MAX_EXPORT,
        access="export",
    )
    response = csv_response(
        AUDIT_EVENT_COLUMNS, audit_event_rows(page.events), "audit-events.csv"
    )
    response.headers["Cache-Control"] = "no-store"
    if page.next_cursor:
        response.headers["X-Audit-Export-Truncated"] = "true"
    return response


@router.get("/events/{event_id}")
async def audit_event(
    event_id: uuid.UUID, principal: Authed, request: Request
) -> AuditEventDetailOut:
    """One event and whether the newest signed checkpoint proves it, with the
    inclusion proof when it does (recorded as a view naming its patients)."""
    event, status = await viewer.event_detail(
        services(request).db,
        _vault(request),
        request_claims(request, principal),
        event_id,
    )
    return AuditEventDetailOut(
        event=AuditEventOut.of(event), proof=ProofStatusOut.of(status)
    )


@router.get("/checkpoints")
async def audit_checkpoints(
    principal: Authed,
    request: Request,
    before: Annotated[
        int | None, Query(ge=1, description="only sizes below this one")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> CheckpointListOut:
    """Signed checkpoints, newest first, with the log's origin and verifier key."""
    claims = request_claims(request, principal)
    found = await viewer.list_checkpoints(
        services(request).db, claims, before=before, limit=limit
    )
    assert claims.practice_id is not None
    origin, key = viewer.verifier_key(_vault(request).keystore, claims.practice_id)
    return CheckpointListOut(
        origin=origin,
        verifier_key=key,
        checkpoints=[CheckpointOut.of(c) for c in found],
    )


@router.get("/proofs/inclusion")
async def audit_inclusion_proof(
    principal: Authed,
    request: Request,
    index: Annotated[int, Query(ge=0, le=2**53 - 1)],
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=2**53 - 1, description="a checkpoint's size; default newest"),
    ] = None,
) -> InclusionProofOut:
    """RFC 9162 inclusion proof of the event at `index` in a signed checkpoint.
    404 when no checkpoint has that size or the index is beyond it."""
    proof = await viewer.get_inclusion_proof(
        services(request).db,
        _vault(request).keystore,
        request_claims(request, principal),
        index,
        tree_size,
    )
    return InclusionProofOut.of(proof)


@router.get("/proofs/consistency")
async def audit_consistency_proof(
    principal: Authed,
    request: Request,
    old_size: Annotated[int, Query(ge=1, le=2**53 - 1)],
    new_size: Annotated[int, Query(ge=1, le=2**53 - 1)],
) -> ConsistencyProofOut:
    """RFC 9162 consistency proof: the checkpoint of `old_size` is a prefix of the
    checkpoint of `new_size`. Both must be sizes of signed checkpoints."""
    proof = await viewer.get_consistency_proof(
        services(request).db,
        _vault(request).keystore,
        request_claims(request, principal),
        old_size,
        new_size,
    )
    return ConsistencyProofOut.of(proof)
