"""Console pages for calls: the call list, a call's page with its legal hold, the
transcript view, recording playback, the practice's retention settings, and the
Twilio recordings left to the practice (owners and managers).

Each handler is as thin as its API twin (api/calls_routes.py): both call the same
calls-service method, so they cannot disagree, and the database decides every
access and records it (a transcript as `view`, a recording as `playback`).
Playback streams the recording decrypted in memory, chunk by chunk; nothing is
written to disk in plaintext, and the response is `no-store` like every page.
Pages offer only what the role may do; a refusal the service still makes is shown
as a sentence. URLs carry only record ids and dates.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from perpetua.access.permissions import Permissions
from perpetua.calls import settings as call_settings
from perpetua.calls.fetch_review import REVIEW_ROLES
from perpetua.calls.service import Calls, Playback
from perpetua.errors import (
    InvalidInput,
    PerpetuaError,
)
from perpetua.identity.sessions import Principal
from perpetua.redaction.errors import CardNumberInText
from perpetua.web.claims import request_claims
from perpetua.web.console import page
from perpetua.web.console_gate import LOCKED, member_or_signin, phi_lock
from perpetua.web.context import (
    services,
)
from perpetua.web.csrf import check_csrf

router = APIRouter(include_in_schema=False)

LIST_DAYS = 7


def calls_service(request: Request) -> Calls:
    found = request.app.state.calls
    assert isinstance(found, Calls)
    return found


def playback_response(found: Playback) -> StreamingResponse:
    # Decrypted chunk by chunk as the client reads; never cached or stored.
    return StreamingResponse(
        found.chunks,
        media_type=found.content_type,
        headers={"cache-control": "no-store", "content-disposition": "inline"},
    )


def _calm(exc: PerpetuaError) -> str:
    """A sentence for the page; details are safe to show, they never hold values."""
    if exc.code == "baa_not_signed":
        return LOCKED
    if exc.code in ("not_found", "blob_not_found"):
        return "There is no record here that you may see."
    if exc.code == "forbidden" and exc.detail != exc.title:
        return f"Not available to your role: {exc.detail}."
    if exc.code == "forbidden":
        return "Not available to your role. An owner or manager can help."
    return exc.detail


class _Member:
    def __init__(self, principal: Principal, permissions: Permissions) -> None:
        self.principal = principal
        self.permissions = permissions

    def can(self, category: str, action: str) -> bool:
        return self.permissions.allows(self.principal.role, category, action)

    @property
    def may_hold(self) -> bool:
        return self.principal.role in ("owner", "manager")

    @property
    def may_review_fetches(self) -> bool:
        return self.principal.role in REVIEW_ROLES


def _render(
    request: Request, member: _Member, template: str, status: int = 200, **ctx: Any
) -> Response:
    return page(
        request,
        template,
        status,
        principal=member.principal,
        can=member.can,
        may_hold=member.may_hold,
        may_review_fetches=member.may_review_fetches,
        **ctx,
    )


async def _member(request: Request) -> _Member | Response:
    """The caller, or the page to show instead: sign-in, or the locked feature."""
    principal = await member_or_signin(request)
    if isinstance(principal, Response):
        return principal
    svc = services(request)
    assert svc.records is not None
    member = _Member(principal, svc.records.gate.permissions)
    reason = await phi_lock(request, principal)
    if reason is not None:
        return _render(request, member, "records_locked.html", reason=reason)
    return member


def _day(value: str, today: dt.date) -> dt.date:
    if not value:
        return today
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("the day must be a date (YYYY-MM-DD)") from None


# The call list


@router.get("/calls")
async def call_list(request: Request, until: str = "") -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    today = services(request).clock.now().astimezone(dt.UTC).date()
    calls: list[Any] = []
    error = None
    status = 200
    last = today
    try:
        last = _day(until, today)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), dt.UTC)
        calls = await calls_service(request).list_calls(
            request_claims(request, member.principal),
            end - dt.timedelta(days=LIST_DAYS),
            end,
        )
    except PerpetuaError as exc:
        error, status = _calm(exc), exc.status
    return _render(
        request,
        member,
        "calls_list.html",
        status,
        calls=calls,
        first=last - dt.timedelta(days=LIST_DAYS - 1),
        last=last,
        earlier=last - dt.timedelta(days=LIST_DAYS),
        later=last + dt.timedelta(days=LIST_DAYS),
        error=error,
    )


# Twilio recordings left to the practice (owners and managers). A page of its
# own, linked from the list: reading it is an audit event, recorded only when
# someone opens it. Declared before /calls/{call_id}, which would take the path.


@router.get("/calls/twilio-fetches")
async def twilio_fetches_page(request: Request) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    try:
        fetches = await calls_service(request).twilio_fetches_for_review(
            request_claims(request, member.principal)
        )
    except PerpetuaError as exc:
        return _render(
            request,
            member,
            "calls_twilio_fetches.html",
            exc.status,
            fetches=None,
            error=_calm(exc),
        )
    return _render(request, member, "calls_twilio_fetches.html", fetches=fetches)


# One call


async def _call_page(
    request: Request,
    member: _Member,
    call_id: uuid.UUID,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    try:
        detail = await calls_service(request).call_detail(
            request_claims(request, member.principal), call_id
        )
    except PerpetuaError as exc:
        return _render(
            request,
            member,
            "calls_call.html",
            exc.status,
            detail=None,
            call_id=call_id,
            error=error or _calm(exc),
        )
    return _render(
        request,
        member,
        "calls_call.html",
        status,
        detail=detail,
        call_id=call_id,
        error=error,
        notice=notice,
    )


@router.get("/calls/{call_id}")
async def call_page(request: Request, call_id: uuid.UUID, saved: int = 0) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    return await _call_page(
        request, member, call_id, notice="Saved." if saved else None
    )


@router.get("/calls/{call_id}/transcript")
async def transcript_page(request: Request, call_id: uuid.UUID) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    try:
        turns = await calls_service(request).transcript(
            request_claims(request, member.principal), call_id
        )
    except PerpetuaError as exc:
        return _render(
            request,
            member,
            "calls_transcript.html",
            exc.status,
            call_id=call_id,
            turns=[],
            error=_calm(exc),
        )
    return _render(
        request, member, "calls_transcript.html", call_id=call_id, turns=turns
    )


@router.get("/calls/{call_id}/recording")
async def recording(request: Request, call_id: uuid.UUID) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    found = await calls_service(request).playback(
        request_claims(request, member.principal), call_id
    )
    return playback_response(found)


@router.post("/calls/{call_id}/hold")
async def place_hold(
    request: Request,
    call_id: uuid.UUID,
    reason: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    member = await _member(request)
    if isinstance(member, Response):
        return member
    try:
        await calls_service(request).place_hold(
            request_claims(request, member.principal), call_id, reason
        )
    except CardNumberInText as exc:
        # The refused text is not shown back in the page it was typed into.
        return await _call_page(
            request, member, call_id, error=_calm(exc), status=exc.status
        )
    except PerpetuaError as exc:
        return await _call_page(
            request, member, call_id, error=_calm(exc), status=exc.status
        )
    return RedirectResponse(f"/calls/{call_id}?saved=1", 303)


@router.post("/calls/{call_id}/hold/release")
async def release_hold(
    request: Request, call_id: uuid.UUID, csrf: str = Form("", alias="csrf_token")
) -> Response:
    check_csrf(request, csrf)
    member = await _member(request)
    if isinstance(member, Response):
        return member
    try:
        await calls_service(request).release_hold(
            request_claims(request, member.principal), call_id
        )
    except PerpetuaError as exc:
        return await _call_page(
            request, member, call_id, error=_calm(exc), status=exc.status
        )
    return RedirectResponse(f"/calls/{call_id}?saved=1", 303)


# Retention settings (owners)


async def _settings_page(
    request: Request,
    member: _Member,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    if member.principal.role != "owner":
        return _render(
            request,
            member,
            "calls_settings.html",
            403,
            chosen=None,
            form={},
            error="Only the practice's owners choose how long calls are kept.",
        )
    chosen = await calls_service(request).settings(
        request_claims(request, member.principal)
    )
    shown = form or {
        "recording_retention_days": chosen.recording_retention_days,
        "transcript_retention_days": chosen.transcript_retention_days,
        "twilio_account_sid": chosen.twilio_account_sid or "",
        "twilio_delete_after_fetch": chosen.twilio_delete_after_fetch,
    }
    return _render(
        request,
        member,
        "calls_settings.html",
        status,
        chosen=chosen,
        form=shown,
        origin=services(request).settings.origin,
        error=error,
        notice=notice,
    )


@router.get("/settings/calls")
async def settings_page(request: Request, saved: int = 0) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    return await _settings_page(request, member, notice="Saved." if saved else None)


def _days(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number of days") from None


@router.post("/settings/calls")
async def save_settings(
    request: Request,
    recording_retention_days: str = Form(""),
    transcript_retention_days: str = Form(""),
    twilio_account_sid: str = Form(""),
    twilio_auth_token: str = Form(""),
    remove_twilio_token: str = Form(""),
    twilio_delete_after_fetch: str = Form(""),
    csrf: str = Form("", alias="csrf_token"),
) -> Response:
    check_csrf(request, csrf)
    member = await _member(request)
    if isinstance(member, Response):
        return member
    # The token is never shown back, whatever happens.
    form = {
        "recording_retention_days": recording_retention_days,
        "transcript_retention_days": transcript_retention_days,
        "twilio_account_sid": twilio_account_sid,
        "twilio_delete_after_fetch": bool(twilio_delete_after_fetch),
    }
    try:
        token: str | None = twilio_auth_token.strip() or None
        if remove_twilio_token:
            token = ""
        await calls_service(request).change_settings(
            request_claims(request, member.principal),
            call_settings.SettingsChange(
                recording_retention_days=_days(
                    recording_retention_days, "recording retention"
                ),
                transcript_retention_days=_days(
                    transcript_retention_days, "transcript retention"
                ),
                twilio_account_sid=twilio_account_sid,
                twilio_auth_token=token,
                # An unticked checkbox is not sent at all.
                twilio_delete_after_fetch=bool(twilio_delete_after_fetch),
            ),
        )
    except PerpetuaError as exc:
        return await _settings_page(
            request, member, form=form, error=_calm(exc), status=exc.status
        )
    return RedirectResponse("/settings/calls?saved=1", 303)
