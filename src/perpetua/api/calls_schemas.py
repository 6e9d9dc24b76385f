"""Bodies of the calls API: uploads from telephony integrations, the call log,
transcripts, legal holds, the practice's retention settings and the Twilio
recording fetches that need the practice's attention."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallUploadIn(Strict):
    direction: Literal["inbound", "outbound"]
    started_at: dt.datetime
    duration_seconds: int = Field(default=0, ge=0, le=86400)
    caller_number: str | None = Field(default=None, max_length=40)
    recording_base64: str | None = Field(
        default=None,
        description="The recording (WAV, MP3 or OGG), base64; told apart by its "
        "first bytes, not by any name.",
    )
    transcript: str | dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="Plain text with one `Speaker: words` turn per line, or JSON "
        "turns with optional word timings (`speaker`, `text`, `words`: `text`, "
        "`start`, `end` in seconds).",
    )


class IngestedOut(BaseModel):
    call_id: uuid.UUID
    patient_id: uuid.UUID | None
    recording_stored: bool
    transcript_stored: bool
    redactions: int = Field(description="Card numbers and security codes removed.")
    silenced: bool = Field(description="Whether audio spans were silenced.")
    not_stored: list[str]


class CallSummaryOut(BaseModel):
    id: uuid.UUID
    direction: str
    caller_number: str | None
    started_at: dt.datetime
    duration_seconds: int
    patient_id: uuid.UUID | None
    has_recording: bool
    has_transcript: bool
    on_hold: bool


class StoredMediaOut(BaseModel):
    kind: str
    content_type: str
    redactions: int
    silenced: bool
    stored_at: dt.datetime
    deleted_at: dt.datetime | None
    certificate_id: uuid.UUID | None


class HoldOut(BaseModel):
    placed_at: dt.datetime
    reason: str


class CallDetailOut(BaseModel):
    call: CallSummaryOut
    media: list[StoredMediaOut]
    hold: HoldOut | None


class WordOut(BaseModel):
    text: str
    start: float
    end: float


class TurnOut(BaseModel):
    speaker: str | None
    text: str
    words: list[WordOut]


class TranscriptOut(BaseModel):
    call_id: uuid.UUID
    turns: list[TurnOut]


class LegalHoldIn(Strict):
    reason: str = Field(min_length=3, max_length=500)


class CallSettingsIn(Strict):
    recording_retention_days: int = Field(ge=0, le=3650)
    transcript_retention_days: int = Field(ge=0, le=3650)
    twilio_account_sid: str | None = Field(default=None, max_length=34)
    twilio_auth_token: str | None = Field(
        default=None,
        max_length=128,
        description="Omit to keep the stored token; an empty string removes it.",
    )
    twilio_delete_after_fetch: bool = Field(
        default=True,
        description="Delete each recording at Twilio once Perpetua stored it.",
    )


class CallSettingsOut(BaseModel):
    recording_retention_days: int
    transcript_retention_days: int
    twilio_account_sid: str | None
    twilio_configured: bool
    twilio_delete_after_fetch: bool
    twilio_credentials_rejected: bool = Field(
        description="Twilio refused the stored credentials (owners only); "
        "recording fetches wait until new ones are saved."
    )
    updated_at: dt.datetime | None


class TwilioFetchOut(BaseModel):
    id: uuid.UUID
    call_id: uuid.UUID
    call_recorded: bool = Field(
        description="Whether Perpetua recorded the call: its page and "
        "`GET /api/v1/calls/{call_id}/media` exist only then."
    )
    recording_sid: str = Field(
        description="Twilio's id of the recording (`RE` and 32 hex digits), to "
        "find it in the practice's Twilio account."
    )
    status: Literal[
        "failed",
        "gone",
        "refused",
        "credentials_rejected",
        "pending",
        "delete_pending",
    ]
    summary: str = Field(description="The status in a few plain words.")
    explanation: str = Field(
        description="What happened and what the practice can do, in plain words."
    )
    recording_stored: bool = Field(
        description="Whether the recording is stored in Perpetua."
    )
    attempts: int
    last_error: str | None = Field(
        description="The last error as a short code (`[a-z0-9_]`), never a "
        "message from Twilio."
    )
    created_at: dt.datetime = Field(description="When the recording was queued.")
    updated_at: dt.datetime
