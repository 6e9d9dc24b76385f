"""Console pages for the Business Associate Agreement: the review page with the full
text and, for an owner, the signing form; the signatures already made; and the
download of an executed PDF.

Each handler calls the same contracts-service method as its API twin, so the
console and the API cannot disagree; the database refuses a signature from anyone
but an owner even if a page offered it. The form is CSRF-checked, consent is an
explicit checkbox, and the version and digest of the text shown travel with the
form so an owner never signs a text other than the one on the screen.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from perpetua.api.contracts_routes import contracts
from perpetua.contracts.agreements import Agreement
from perpetua.contracts.service import SignRequest
from perpetua.errors import NotAuthenticated, PerpetuaError, SessionExpired
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.context import SESSION_COOKIE, console_principal
from perpetua.web.csrf import check_csrf

router = APIRouter(include_in_schema=False)


def _to_signin(expired: bool = False) -> Response:
    response = RedirectResponse("/signin?ended=1" if expired else "/signin", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True)
    return response


async def _principal(request: Request) -> Principal | Response:
    try:
        return await console_principal(request)
    except SessionExpired:
        return _to_signin(expired=True)
    except NotAuthenticated:
        return _to_signin()


def _blocks(agreement: Agreement) -> list[tuple[str, str]]:
    """The Markdown text as headings and paragraphs, for the review page."""
    blocks: list[tuple[str, str]] = []
    paragraph: list[str] = []
    for line in [*agreement.text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            if paragraph:
                blocks.append(("p", " ".join(paragraph)))
                paragraph = []
            if stripped:
                level = len(stripped) - len(stripped.lstrip("#"))
                blocks.append(("h2" if level == 1 else "h3", stripped.lstrip("# ")))
        else:
            paragraph.append(stripped)
    return blocks


async def _review(
    request: Request,
    principal: Principal,
    http_status: int = 200,
    *,
    signed: bool = False,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    status = await contracts(request).status(request_claims(request, principal))
    return page(
        request,
        "contracts_agreement.html",
        http_status,
        principal=principal,
        status=status,
        agreement=status.current,
        blocks=_blocks(status.current),
        signature=status.current_signature,
        just_signed=signed,
        error=error,
        form=form or {},
    )


@router.get("/agreement")
async def agreement(request: Request, signed: int = 0) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    return await _review(request, principal, signed=bool(signed))


@router.post("/agreement/sign")
async def sign(
    request: Request,
    full_name: str = Form(""),
    title: str = Form(""),
    consent: str = Form(""),
    version: str = Form(""),
    document_sha256: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    try:
        await contracts(request).sign(
            request_claims(request, principal),
            SignRequest(
                full_name=full_name,
                title=title,
                consent=consent == "yes",
                version=version,
                document_sha256=document_sha256 or None,
            ),
        )
    except PerpetuaError as exc:
        # What the owner typed goes back only into this no-store page.
        kept = {"full_name": full_name, "title": title}
        return await _review(
            request, principal, exc.status, error=exc.detail, form=kept
        )
    return RedirectResponse("/agreement?signed=1", status_code=303)


@router.get("/agreement/executed/{signature_id}.pdf")
async def executed_pdf(request: Request, signature_id: uuid.UUID) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
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
        },
    )
