"""Console page for the practice's tamper-evident audit log (owners and managers).

The page shows the key that proves the log (to pin when checking an archive) and
offers the practice's own verifiable archive, the same file as
`GET /api/v1/audit/archive`, through the same service (`audit/export.py`); the
database decides who may export and records the download as an export.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from perpetua.audit.export import export_archive
from perpetua.audit.offline_verify import practice_log_origin
from perpetua.audit.sealing import signer_for
from perpetua.crypto.keystore import DataClass
from perpetua.errors import NotAuthenticated, PerpetuaError, SessionExpired
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.context import console_principal, services

router = APIRouter(include_in_schema=False)

_ROLES = ("owner", "manager")


async def _principal(request: Request) -> Principal | Response:
    try:
        return await console_principal(request)
    except SessionExpired:
        return RedirectResponse("/signin?ended=1", 303)
    except NotAuthenticated:
        return RedirectResponse("/signin", 303)


def _audit_page(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    origin = key = None
    if principal.practice_id is not None and principal.role in _ROLES:
        svc = services(request)
        assert svc.records is not None
        origin = practice_log_origin(str(principal.practice_id))
        class_key = svc.records.vault.keystore.current(
            principal.practice_id, DataClass.AUDIT_SIGNING
        )
        key = signer_for(class_key, origin).verifier.to_key()
    return page(
        request,
        "audit_log.html",
        http_status,
        principal=principal,
        origin=origin,
        verifier_key=key,
        allowed=key is not None,
        error=error,
    )


@router.get("/audit")
async def audit_log(request: Request) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    return _audit_page(request, principal)


@router.get("/audit/archive")
async def audit_archive(request: Request) -> Response:
    principal = await _principal(request)
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
        return _audit_page(request, principal, error=exc.detail, http_status=exc.status)
    return Response(
        archive.data,
        media_type="application/jsonl",
        headers={
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "Cache-Control": "no-store",
        },
    )
