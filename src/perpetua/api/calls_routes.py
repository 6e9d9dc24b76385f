"""JSON API for calls: the Twilio voice webhook, uploads from other telephony
providers, the call log, transcripts, recording playback, legal holds, the
practice's retention settings and the Twilio recording fetches left to it. Each
route translates HTTP to one calls-service call; the service and the database
decide."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.responses import StreamingResponse

from perpetua.api.calls_schemas import (
    CallDetailOut,
    CallSettingsIn,
    CallSettingsOut,
    CallSummaryOut,
    CallUploadIn,
    IngestedOut,
    LegalHoldIn,
    TranscriptOut,
    TwilioFetchOut,
)
from perpetua.api.schemas import Problem
from perpetua.calls import fetch, webhook
from perpetua.calls import settings as call_settings
from perpetua.calls.errors import IntegrationOnly, UnsupportedMedia, WebhookRefused
from perpetua.calls.media import MAX_RECORDING_BYTES
from perpetua.calls.models import IncomingCall
from perpetua.calls.service import practice_system_claims
from perpetua.errors import PerpetuaError
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.console_calls import calls_service, playback_response
from perpetua.web.context import api_principal, request_id, scoped, services

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 410, 413, 415, 422)
}

router = APIRouter(prefix="/api/v1", responses=_PROBLEMS, tags=["calls"])
Authed = Annotated[Principal, Depends(api_principal)]
Integration = Annotated[Principal, Depends(scoped("calls:create"))]

# base64 grows the recording by a third; the rest of the body is small.
_UPLOAD_LIMIT = MAX_RECORDING_BYTES * 4 // 3 + 4 * 1024 * 1024


class PayloadTooLarge(PerpetuaError):
    code = "payload_too_large"
    status = 413
    title = "The request is too large"


def _refuse_large(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > limit:
        raise PayloadTooLarge()


async def _limited_upload(request: Request) -> None:
    _refuse_large(request, _UPLOAD_LIMIT)


@router.post(
    "/telephony/twilio/{practice_id}/voice",
    tags=["telephony"],
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}}},
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {}}}
        }
    },
)
async def twilio_voice(practice_id: uuid.UUID, request: Request) -> Response:
    """Twilio's call status, recording status and transcription callbacks for one
    practice, signed with the practice's auth token (`X-Twilio-Signature`);
    anything unsigned or signed with another token is refused with 403 before it
    is read further. A completed recording is queued and fetched from the
    practice's Twilio account in the background."""
    _refuse_large(request, webhook.MAX_BODY_BYTES)
    params = webhook.form_params(await request.body())
    svc = services(request)
    calls = calls_service(request)
    claims = practice_system_claims(practice_id, request_id(request))

    # The signature covers the URL Twilio called: the public origin, this path
    # and the query string, exactly.
    url = svc.settings.origin + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    async with svc.db.transaction(claims) as conn:
        token = await call_settings.twilio_token(conn, calls.vault, practice_id)
    if not webhook.signature_valid(
        token, url, params, request.headers.get("x-twilio-signature")
    ):
        raise WebhookRefused()

    incoming = webhook.incoming_from(practice_id, params, svc.clock.now())
    if incoming is not None:
        await calls.ingest(claims, incoming)
    recording = webhook.recording_from(practice_id, params)
    if recording is not None:
        await fetch.queue_recording(calls, claims, recording)
    return Response(webhook.TWIML_EMPTY, media_type="text/xml")


def _transcript_bytes(value: str | dict[str, Any] | list[Any] | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


@router.post("/calls/uploads", status_code=201, dependencies=[Depends(_limited_upload)])
async def upload_call(
    body: CallUploadIn, principal: Integration, request: Request
) -> IngestedOut:
    """Record a call from a telephony provider, with its recording and transcript
    (API tokens with the `calls:create` scope). Card numbers are removed from the
    transcript, and the same seconds silenced in the recording (WAV, MP3 or
    Ogg), before anything is stored; nothing is stored that the practice opted
    out of."""
    if principal.user_kind != "api_token" or principal.practice_id is None:
        raise IntegrationOnly()
    recording = None
    if body.recording_base64 is not None:
        try:
            recording = base64.b64decode(body.recording_base64, validate=True)
        except (binascii.Error, ValueError):
            raise UnsupportedMedia("the recording is not valid base64") from None
    # The token is named as the actor of everything this upload writes.
    claims = practice_system_claims(
        principal.practice_id, request_id(request), actor_id=principal.user_id
    )
    made = await calls_service(request).ingest(
        claims,
        IncomingCall(
            direction=body.direction,
            started_at=body.started_at,
            duration_seconds=body.duration_seconds,
            caller_number=body.caller_number,
            recording=recording,
            transcript=_transcript_bytes(body.transcript),
        ),
    )
    return IngestedOut(
        call_id=made.call_id,
        patient_id=made.patient_id,
        recording_stored=made.recording_stored,
        transcript_stored=made.transcript_stored,
        redactions=made.redactions,
        silenced=made.silenced,
        not_stored=list(made.not_stored),
    )


@router.get("/calls/log")
async def call_log(
    principal: Authed,
    request: Request,
    since: Annotated[dt.datetime, Query(description="From (inclusive), with offset")],
    until: Annotated[dt.datetime, Query(description="Until (exclusive)")],
) -> list[CallSummaryOut]:
    """Calls in a range with what is stored for each, newest first (at most 500;
    recorded as a view)."""
    found = await calls_service(request).list_calls(
        request_claims(request, principal), since, until
    )
    return [CallSummaryOut.model_validate(c, from_attributes=True) for c in found]


@router.get("/calls/twilio-fetches")
async def twilio_fetches(principal: Authed, request: Request) -> list[TwilioFetchOut]:
    """Twilio recordings that need the practice's attention, most recently changed
    first (at most 500): fetches that failed, that Twilio no longer has, that were
    refused as unsafe to store, that wait for Twilio credentials, or that have been
    pending for over an hour (owners and managers; recorded as a view)."""
    found = await calls_service(request).twilio_fetches_for_review(
        request_claims(request, principal)
    )
    return [TwilioFetchOut.model_validate(f, from_attributes=True) for f in found]


@router.get("/calls/{call_id}/media")
async def call_media(
    call_id: uuid.UUID, principal: Authed, request: Request
) -> CallDetailOut:
    """One call with its stored recording and transcript and its legal hold."""
    found = await calls_service(request).call_detail(
        request_claims(request, principal), call_id
    )
    return CallDetailOut.model_validate(found, from_attributes=True)


@router.get("/calls/{call_id}/transcript")
async def call_transcript(
    call_id: uuid.UUID, principal: Authed, request: Request
) -> TranscriptOut:
    """The call's transcript, card numbers already replaced (recorded as a view)."""
    turns = await calls_service(request).transcript(
        request_claims(request, principal), call_id
    )
    return TranscriptOut.model_validate({"call_id": call_id, "turns": turns})


@router.get(
    "/calls/{call_id}/recording",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/wav": {}, "audio/mpeg": {}, "audio/ogg": {}}}},
)
async def call_recording(
    call_id: uuid.UUID, principal: Authed, request: Request
) -> StreamingResponse:
    """The recording, decrypted as it streams (recorded as `playback`)."""
    found = await calls_service(request).playback(
        request_claims(request, principal), call_id
    )
    return playback_response(found)


@router.put("/calls/{call_id}/legal-hold", status_code=204)
async def place_hold(
    call_id: uuid.UUID, body: LegalHoldIn, principal: Authed, request: Request
) -> Response:
    """Suspend the deletion of the call's recording and transcript (owners and
    managers)."""
    await calls_service(request).place_hold(
        request_claims(request, principal), call_id, body.reason
    )
    return Response(status_code=204)


@router.delete("/calls/{call_id}/legal-hold", status_code=204)
async def release_hold(
    call_id: uuid.UUID, principal: Authed, request: Request
) -> Response:
    """Release the call's legal hold; retention applies again (owners and
    managers)."""
    await calls_service(request).release_hold(
        request_claims(request, principal), call_id
    )
    return Response(status_code=204)


def _settings_out(found: call_settings.CallSettings) -> CallSettingsOut:
    return CallSettingsOut.model_validate(found, from_attributes=True)


@router.get("/practice/call-settings")
async def get_call_settings(principal: Authed, request: Request) -> CallSettingsOut:
    """How long recordings and transcripts are kept, and whether Twilio is set up."""
    found = await calls_service(request).settings(request_claims(request, principal))
    return _settings_out(found)


@router.put("/practice/call-settings")
async def put_call_settings(
    body: CallSettingsIn, principal: Authed, request: Request
) -> CallSettingsOut:
    """Choose retention (days; 0 = never store) and the Twilio credentials
    (owners)."""
    found = await calls_service(request).change_settings(
        request_claims(request, principal),
        call_settings.SettingsChange(**body.model_dump()),
    )
    return _settings_out(found)


@router.get("/practice/deletion-certificates")
async def deletion_certificates(
    principal: Authed, request: Request
) -> list[dict[str, Any]]:
    """Certificates of every deletion retention made (owners)."""
    return await calls_service(request).deletion_certificates(
        request_claims(request, principal)
    )
