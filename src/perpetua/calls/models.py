"""Calls as this package hands them to the console and the API."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from perpetua.redaction import AudioSpan


@dataclass(frozen=True)
class IncomingCall:
    """A call as a telephony source delivers it, before anything is stored."""

    direction: str
    started_at: dt.datetime
    duration_seconds: int = 0
    caller_number: str | None = None
    recording: bytes | None = field(default=None, repr=False)
    transcript: bytes | None = field(default=None, repr=False)
    # Given by sources with their own call ids (Twilio's CallSid), so that a
    # retried delivery lands on the same call.
    call_id: uuid.UUID | None = None
    # Card-number spans already known from the call's stored transcript (a
    # recording fetched after its transcript): silenced like a delivered one's.
    known_spans: tuple[AudioSpan, ...] = ()


@dataclass(frozen=True)
class Ingested:
    call_id: uuid.UUID
    patient_id: uuid.UUID | None
    recording_stored: bool
    transcript_stored: bool
    redactions: int
    silenced: bool
    # Why a delivered recording or transcript was not kept, if it was not.
    not_stored: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallSummary:
    id: uuid.UUID
    direction: str
    caller_number: str | None
    started_at: dt.datetime
    duration_seconds: int
    patient_id: uuid.UUID | None
    has_recording: bool
    has_transcript: bool
    on_hold: bool


@dataclass(frozen=True)
class StoredMedia:
    kind: str
    content_type: str
    redactions: int
    silenced: bool
    stored_at: dt.datetime
    deleted_at: dt.datetime | None
    certificate_id: uuid.UUID | None


@dataclass(frozen=True)
class Hold:
    placed_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class CallDetail:
    call: CallSummary
    media: tuple[StoredMedia, ...]
    hold: Hold | None

    def stored(self, kind: str) -> StoredMedia | None:
        return next((m for m in self.media if m.kind == kind), None)
