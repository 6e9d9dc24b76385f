"""The Twilio-compatible voice webhook: nothing is accepted before the request's
signature checks out against the practice's own auth token.

Twilio signs each callback with HMAC over the full URL it requested and the POST
parameters (`X-Twilio-Signature`); `twilio.request_validator.RequestValidator`
recomputes it. A missing practice, a practice without a token and a wrong
signature get the same refusal, so the endpoint tells an attacker nothing.

What a verified callback records:

* a call status callback with `CallStatus=completed`: the call (direction,
  caller number, start, duration), linked to the patient whose phone matches;
* a transcription callback (`TranscriptionText`): the call, if not yet recorded,
  and its transcript, redacted like any other;
* a recording status callback with `RecordingStatus=completed`: a row in the
  fetch queue (`fetch.py`), naming the recording by its `RecordingSid` only;
* other statuses (ringing, in progress): acknowledged, nothing stored.

The callback's `RecordingUrl` is ignored: the fetcher builds the media URL from
the practice's stored account SID and the recording SID (`twilio.py`), so a
callback cannot choose where this service sends requests.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from perpetua.calls.errors import WebhookRefused
from perpetua.calls.models import IncomingCall
from perpetua.errors import InvalidInput

# Twilio's ids: two letters and 32 hex digits.
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MAX_BODY_BYTES = 64 * 1024
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# A fixed namespace: the same practice and CallSid always name the same call.
_CALL_NAMESPACE = uuid.UUID("5f0f1c3e-6a8e-4d0e-9a4c-2b1d7d3e9c11")


def form_params(body: bytes) -> dict[str, str]:
    """The POST parameters of a form-encoded callback."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRefused()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise WebhookRefused() from None
    return dict(pairs)


def signature_valid(
    token: str | None, url: str, params: dict[str, str], signature: str | None
) -> bool:
    """Whether Twilio signed this URL and these parameters with `token`."""
    if not token or not signature:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


def call_id_for(practice_id: uuid.UUID, call_sid: str) -> uuid.UUID:
    return uuid.uuid5(_CALL_NAMESPACE, f"{practice_id}:{call_sid}")


def _started(params: dict[str, str], duration: int, now: dt.datetime) -> dt.datetime:
    stamp = params.get("Timestamp")
    if stamp:
        try:
            ended = email.utils.parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            ended = None
        if ended is not None and ended.tzinfo is not None:
            return ended - dt.timedelta(seconds=duration)
    return now - dt.timedelta(seconds=duration)


def incoming_from(
    practice_id: uuid.UUID, params: dict[str, str], now: dt.datetime
) -> IncomingCall | None:
    """The call a verified callback describes, or None when it stores nothing."""
    transcript = params.get("TranscriptionText")
    if params.get("CallStatus") != "completed" and transcript is None:
        return None
    sid = params.get("CallSid", "")
    if not _CALL_SID.fullmatch(sid):
        raise InvalidInput("CallSid is missing or malformed")
    raw_duration = params.get("CallDuration") or params.get("RecordingDuration") or "0"
    try:
        duration = max(0, int(raw_duration))
    except ValueError:
        raise InvalidInput("the call duration must be whole seconds") from None
    outbound = params.get("Direction", "inbound").startswith("outbound")
    caller = params.get("To") if outbound else params.get("From")
    return IncomingCall(
        direction="outbound" if outbound else "inbound",
        started_at=_started(params, duration, now),
        duration_seconds=duration,
        caller_number=caller or None,
        transcript=transcript.encode("utf-8") if transcript else None,
        call_id=call_id_for(practice_id, sid),
    )


@dataclass(frozen=True)
class RecordingReady:
    """A completed recording at Twilio, to fetch for the call it belongs to."""

    call_id: uuid.UUID
    recording_sid: str
    duration_seconds: int
    channels: int
    # The account the callback names; checked against the stored one.
    account_sid: str | None


def recording_from(
    practice_id: uuid.UUID, params: dict[str, str]
) -> RecordingReady | None:
    """The recording a verified callback announces, or None when it is not a
    completed recording (Twilio also reports `in-progress`, `absent`...)."""
    if params.get("RecordingStatus") != "completed":
        return None
    recording_sid = params.get("RecordingSid", "")
    call_sid = params.get("CallSid", "")
    if not _RECORDING_SID.fullmatch(recording_sid):
        raise InvalidInput("RecordingSid is missing or malformed")
    if not _CALL_SID.fullmatch(call_sid):
        raise InvalidInput("CallSid is missing or malformed")
    account = params.get("AccountSid") or None
    if account is not None and not _ACCOUNT_SID.fullmatch(account):
        raise InvalidInput("AccountSid is malformed")
    try:
        duration = int(params.get("RecordingDuration") or "0")
        channels = int(params.get("RecordingChannels") or "1")
    except ValueError:
        raise InvalidInput("the recording duration and channels are numbers") from None
    if not 0 <= duration <= 24 * 3600 or channels not in (1, 2):
        raise InvalidInput("the recording's duration or channels are out of range")
    return RecordingReady(
        call_id=call_id_for(practice_id, call_sid),
        recording_sid=recording_sid,
        duration_seconds=duration,
        channels=channels,
        account_sid=account,
    )
