"""Refusals of the calls domain, each with a stable code and HTTP status."""

from __future__ import annotations

from perpetua.errors import PerpetuaError


class WebhookRefused(PerpetuaError):
    # Deliberately one answer for a bad signature, an unknown practice and a
    # practice without a Twilio token: the caller learns nothing about which.
    code = "webhook_signature_invalid"
    status = 403
    title = "The request signature could not be verified"


class UnsupportedMedia(PerpetuaError):
    code = "unsupported_media"
    status = 415
    title = "Recordings must be WAV, MP3 or OGG audio"


class RecordingNotSilenceable(PerpetuaError):
    """A card number was spoken in a recording that cannot be silenced."""

    code = "recording_not_silenceable"
    status = 422
    title = (
        "The transcript holds a card number that cannot be silenced in the "
        "recording; send word timings for it and a PCM WAV, MP3 or Ogg (Vorbis or "
        "Opus) recording, or send no recording"
    )


class TranscriptUnreadable(PerpetuaError):
    code = "transcript_unreadable"
    status = 422
    title = "The transcript is neither text with speaker turns nor JSON turns"


class MediaDeleted(PerpetuaError):
    """The object was deleted when its retention period ended."""

    code = "media_deleted"
    status = 410
    title = "This was deleted when the practice's retention period ended"


class IntegrationOnly(PerpetuaError):
    code = "integration_only"
    status = 403
    title = (
        "Calls are uploaded by telephony integrations: use an API token with the "
        "calls:create scope"
    )
