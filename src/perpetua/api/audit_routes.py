"""JSON API for the practice's own copy of its tamper-evident audit log.

`GET /api/v1/audit/archive` returns the sealed log as a JSON Lines archive that
`perpetua audit verify --archive FILE --key VKEY` checks offline. Owners and
managers only; the database decides and records the export (or the refusal) as
an audit event. `GET /api/v1/audit/fhir` returns the same events as FHIR R4
AuditEvent resources (NDJSON, shaped after IHE BALP), also recorded as an export.
Both hold patient identifiers: they are PHI.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from perpetua.api.schemas import Problem
from perpetua.audit.export import export_archive, export_fhir
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 503)
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
