"""JSON API for the Business Associate Agreement: status and history, the current
text and its digest, the owner's signature, the executed PDF of every version,
and termination (the encrypted export and the certificate of destruction). Each
route is one call to `contracts/service.py` or `termination/service.py`; the
services and the database decide who may sign or terminate."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.responses import FileResponse

from perpetua.api.schemas import Problem, Strict
from perpetua.contracts.service import (
    Contracts,
    Signature,
    SignRequest,
    Status,
    pdf_filename,
)
from perpetua.identity.sessions import Principal
from perpetua.termination.service import (
    CERTIFICATE_FILENAME,
    TerminationRequest,
    Terminations,
)
from perpetua.termination.state import Termination
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 409, 422, 503)
}

router = APIRouter(prefix="/api/v1/baa", responses=_PROBLEMS, tags=["baa"])
Authed = Annotated[Principal, Depends(api_principal)]


def contracts(request: Request) -> Contracts:
    """The contracts service of this application, opened on first use."""
    found = getattr(request.app.state, "contracts", None)
    if not isinstance(found, Contracts):
        svc = services(request)
        found = Contracts.open(
            svc.db, svc.clock, svc.settings.data_dir, svc.settings.origin
        )
        request.app.state.contracts = found
    return found


def terminations(request: Request) -> Terminations:
    """The termination service of this application, opened on first use."""
    found = getattr(request.app.state, "terminations", None)
    if not isinstance(found, Terminations):
        svc = services(request)
        assert svc.records is not None
        found = Terminations(
            svc.db,
            svc.clock,
            svc.records,
            contracts(request).store,
            svc.settings.data_dir,
            # Recordings and transcripts, when this application runs the calls
            # service; without it the export holds the call records only.
            media=getattr(request.app.state, "calls", None),
        )
        request.app.state.terminations = found
    return found


class AgreementOut(BaseModel):
    version: str
    sha256: str = Field(description="SHA-256 of the text, as recorded at release")
    text: str = Field(description="The full agreement, Markdown")


class SignatureOut(BaseModel):
    id: uuid.UUID
    version: str
    document_sha256: str
    signer_name: str
    signer_title: str
    signed_at: dt.datetime
    countersigner: str
    countersigned_at: dt.datetime
    pdf_sha256: str = Field(description="SHA-256 of the executed PDF")


class TerminationOut(BaseModel):
    state: str = Field(description="closing (gate closed, export pending) or destroyed")
    requested_at: dt.datetime
    destroyed_at: dt.datetime | None
    export_id: uuid.UUID | None
    export_kdf: str | None = Field(description="scrypt or random_key")
    export_bytes: int | None
    export_sha256: str | None = Field(description="SHA-256 of the encrypted file")
    export_counts: dict[str, int] | None
    certificates: list[dict[str, Any]] | None = Field(
        description="The keystore's deletion certificates, one per key bucket"
    )
    certificate_sha256: str | None = Field(
        description="SHA-256 of the certificate of destruction (PDF)"
    )
    export_deleted_at: dt.datetime | None = Field(
        default=None,
        description="When an owner had Perpetua's copy of the export deleted",
    )


class BaaStatusOut(BaseModel):
    in_force: bool = Field(description="PHI features are on")
    current_version: str
    current_sha256: str
    current_signed: bool = Field(description="The current version is signed")
    awaiting_signature: bool = Field(
        description="A newer version awaits an owner's signature; the version "
        "signed before stays in force until then"
    )
    released_versions: list[str]
    signatures: list[SignatureOut] = Field(
        description="Every executed version, newest first"
    )
    termination: TerminationOut | None


class TerminateIn(Strict):
    confirmation: str = Field(
        max_length=200, description="The practice's name, typed by the owner"
    )
    passphrase: str | None = Field(
        default=None,
        min_length=12,
        max_length=1000,
        description="Derives the export's key with scrypt; omit to receive a "
        "random key, shown once in the response",
    )


class TerminatedOut(BaseModel):
    termination: TerminationOut
    export_key: str | None = Field(
        description="The random export key (only without a passphrase); shown "
        "once, never stored"
    )


class SignIn(Strict):
    full_name: str = Field(min_length=2, max_length=200)
    title: str = Field(min_length=2, max_length=200)
    consent: bool = Field(description="Must be true: the owner agrees to the text")
    version: str = Field(description="The version the owner reviewed")
    document_sha256: str | None = Field(
        default=None, description="The digest of the text the owner reviewed"
    )


def _out(signature: Signature) -> SignatureOut:
    return SignatureOut.model_validate(signature, from_attributes=True)


def _termination(found: Termination | None) -> TerminationOut | None:
    if found is None:
        return None
    return TerminationOut.model_validate(found, from_attributes=True)


def status_out(status: Status, released: list[str]) -> BaaStatusOut:
    return BaaStatusOut(
        in_force=status.in_force,
        current_version=status.current.version,
        current_sha256=status.current.sha256,
        current_signed=status.current_signature is not None,
        awaiting_signature=status.awaiting_signature,
        released_versions=released,
        signatures=[_out(s) for s in status.signatures],
        termination=_termination(status.termination),
    )


@router.get("")
async def baa_status(principal: Authed, request: Request) -> BaaStatusOut:
    """Whether the practice's BAA is in force, every executed version, and its
    termination if there was one."""
    service = contracts(request)
    status = await service.status(request_claims(request, principal))
    return status_out(status, sorted(service.library.released()))


@router.get("/agreement")
async def current_agreement(principal: Authed, request: Request) -> AgreementOut:
    """The version owners are asked to sign, with its full text and digest."""
    agreement = contracts(request).library.current()
    return AgreementOut(
        version=agreement.version, sha256=agreement.sha256, text=agreement.text
    )


@router.post("/signatures", status_code=201)
async def sign(
    body: SignIn, principal: Authed, request: Request, response: Response
) -> SignatureOut:
    """Sign the current version (owners only); Perpetua countersigns at once.
    Signing a version already signed returns that signature with 200."""
    signed = await contracts(request).sign(
        request_claims(request, principal), SignRequest(**body.model_dump())
    )
    if not signed.created:
        response.status_code = 200
    return _out(signed.signature)


@router.get(
    "/signatures/{signature_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def executed_pdf(
    signature_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """The executed agreement as a PDF (owners and managers)."""
    signature, document = await contracts(request).executed_pdf(
        request_claims(request, principal), signature_id
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "content-disposition": (
                f'attachment; filename="{pdf_filename(signature)}"'
            ),
            "x-content-sha256": signature.pdf_sha256,
        },
    )


@router.post("/termination", status_code=201)
async def terminate(
    body: TerminateIn, principal: Authed, request: Request
) -> TerminatedOut:
    """Terminate the BAA (owners, re-authenticated within minutes; with the
    second factor when the practice requires MFA): export, destroy, certify.
    A retry after a failed export resumes; after completion it answers 409."""
    done = await terminations(request).terminate(
        principal,
        request_claims(request, principal),
        TerminationRequest(body.confirmation, body.passphrase),
    )
    out = _termination(done.termination)
    assert out is not None
    return TerminatedOut(termination=out, export_key=done.export_key)


@router.get(
    "/termination/export",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def termination_export(principal: Authed, request: Request) -> Response:
    """The encrypted export archive (owners); open it with `perpetua export open`."""
    found, path = await terminations(request).export_file(
        request_claims(request, principal)
    )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"perpetua-export-{found.export_id}.ppex",
        headers={"x-content-sha256": found.export_sha256 or ""},
    )


@router.delete("/termination/export", status_code=204)
async def delete_termination_export(principal: Authed, request: Request) -> Response:
    """Delete Perpetua's copy of the encrypted export (owners), once the practice
    has its own; the termination record keeps when and by whom."""
    await terminations(request).delete_export(request_claims(request, principal))
    return Response(status_code=204)


@router.get(
    "/termination/certificate",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def termination_certificate(principal: Authed, request: Request) -> Response:
    """The certificate of destruction as a PDF (owners and managers)."""
    found, document = await terminations(request).certificate_pdf(
        request_claims(request, principal)
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="{CERTIFICATE_FILENAME}"',
            "x-content-sha256": found.certificate_sha256 or "",
        },
    )
