"""JSON API for the Business Associate Agreement: status, the current text and its
digest, the owner's signature, and the executed PDF. Each route is one call to
`contracts/service.py`; the service and the database decide who may sign."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from perpetua.api.schemas import Problem, Strict
from perpetua.contracts.agreements import current
from perpetua.contracts.service import Contracts, Signature, SignRequest
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.context import api_principal, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 409, 422)
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


class BaaStatusOut(BaseModel):
    in_force: bool = Field(description="PHI features are on")
    current_version: str
    current_sha256: str
    current_signed: bool = Field(description="The current version is signed")
    signatures: list[SignatureOut]


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


@router.get("")
async def baa_status(principal: Authed, request: Request) -> BaaStatusOut:
    """Whether the practice's BAA is in force, and every signature it holds."""
    status = await contracts(request).status(request_claims(request, principal))
    return BaaStatusOut(
        in_force=status.in_force,
        current_version=status.current.version,
        current_sha256=status.current.sha256,
        current_signed=status.current_signature is not None,
        signatures=[_out(s) for s in status.signatures],
    )


@router.get("/agreement")
async def current_agreement(principal: Authed) -> AgreementOut:
    """The version owners are asked to sign, with its full text and digest."""
    agreement = current()
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
                f'attachment; filename="baa-{signature.version}.pdf"'
            ),
            "x-content-sha256": signature.pdf_sha256,
        },
    )
