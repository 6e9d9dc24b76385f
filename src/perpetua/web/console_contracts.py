"""Console pages for the Business Associate Agreement: the review page with the full
text and, for an owner, the signing form (again when a new version is released);
every executed version with its PDF; and termination: the owner's confirmation
form, the export key shown once, the encrypted export and the certificate of
destruction.

Each handler calls the same contracts-service method as its API twin, so the
console and the API cannot disagree; the database refuses a signature from anyone
but an owner even if a page offered it. The form is CSRF-checked, consent is an
explicit checkbox, and the version and digest of the text shown travel with the
form so an owner never signs a text other than the one on the screen.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Form, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from perpetua.api.contracts_routes import contracts, terminations
from perpetua.contracts.agreements import Agreement
from perpetua.contracts.service import SignRequest, pdf_filename
from perpetua.errors import PerpetuaError
from perpetua.identity.sessions import Principal
from perpetua.termination.service import CERTIFICATE_FILENAME, TerminationRequest
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.console_gate import member_or_signin
from perpetua.web.csrf import check_csrf

router = APIRouter(include_in_schema=False)


async def _principal(request: Request) -> Principal | Response:
    return await member_or_signin(request)


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
            "content-disposition": f'attachment; filename="{pdf_filename(signature)}"',
        },
    )


# Termination

# Refusals that a fresh password or second factor resolves; the page links to it.
_CONFIRM_FIRST = ("reauthentication_required", "fresh_second_factor_required")


async def _terminate_page(
    request: Request,
    principal: Principal,
    http_status: int = 200,
    *,
    error: str | None = None,
    confirm_first: bool = False,
) -> Response:
    status = await contracts(request).status(request_claims(request, principal))
    return page(
        request,
        "contracts_terminate.html",
        http_status,
        principal=principal,
        status=status,
        practice_name=await _practice_name(request, principal),
        error=error,
        confirm_first=confirm_first,
        done=None,
        export_key=None,
    )


async def _practice_name(request: Request, principal: Principal) -> str:
    claims = request_claims(request, principal)
    async with contracts(request).db.transaction(claims) as conn:
        cur = await conn.execute(
            "select name from app.practices where id = %s", (principal.practice_id,)
        )
        row = await cur.fetchone()
    return str(row["name"]) if row else ""


@router.get("/agreement/terminate")
async def terminate_form(request: Request) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    return await _terminate_page(request, principal)


@router.post("/agreement/terminate")
async def terminate(
    request: Request,
    confirmation: str = Form(""),
    passphrase: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    try:
        done = await terminations(request).terminate(
            principal,
            request_claims(request, principal),
            TerminationRequest(confirmation, passphrase or None),
        )
    except PerpetuaError as exc:
        # Neither the typed name nor the passphrase is ever sent back.
        return await _terminate_page(
            request,
            principal,
            exc.status,
            error=exc.detail,
            confirm_first=exc.code in _CONFIRM_FIRST,
        )
    status = await contracts(request).status(request_claims(request, principal))
    # The random key is on this no-store page once, and nowhere else.
    return page(
        request,
        "contracts_terminate.html",
        principal=principal,
        status=status,
        practice_name="",
        error=None,
        confirm_first=False,
        done=done.termination,
        export_key=done.export_key,
    )


@router.get("/agreement/termination/export")
async def termination_export(request: Request) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    found, path = await terminations(request).export_file(
        request_claims(request, principal)
    )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"perpetua-export-{found.export_id}.ppex",
    )


@router.post("/agreement/termination/export/delete")
async def delete_termination_export(
    request: Request, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    await terminations(request).delete_export(request_claims(request, principal))
    return RedirectResponse("/agreement?export_deleted=1", status_code=303)


@router.get("/agreement/termination/certificate.pdf")
async def termination_certificate(request: Request) -> Response:
    principal = await _principal(request)
    if isinstance(principal, Response):
        return principal
    _found, document = await terminations(request).certificate_pdf(
        request_claims(request, principal)
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="{CERTIFICATE_FILENAME}"'
        },
    )
