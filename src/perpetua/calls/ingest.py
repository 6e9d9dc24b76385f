"""Taking a call in: check, redact, silence, honour the opt-out, then store.

Every step that can refuse runs before anything is written: a recording that is
not WAV/MP3/OGG, an unreadable transcript, or a card number in audio that cannot
be silenced (no word timings, or audio that does not decode) stops the whole
delivery with nothing stored. Then the practice's retention decides what may be
kept at all: a kind set to 0 days (opted out), or already past its retention, is
dropped in memory and never reaches the blob store or the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid

from perpetua.access.claims import Claims
from perpetua.blobs import BlobStore
from perpetua.calls import settings as call_settings
from perpetua.calls import transcripts
from perpetua.calls.errors import RecordingNotSilenceable
from perpetua.calls.media import check_recording_size, sniff_audio
from perpetua.calls.models import IncomingCall, Ingested
from perpetua.calls.silence import silence
from perpetua.crypto.errors import NormalizationError
from perpetua.crypto.keystore import DataClass
from perpetua.db.pool import Database
from perpetua.errors import InvalidInput, NotFound
from perpetua.records.vault import Vault
from perpetua.redaction import AudioSpan

MAX_DURATION_SECONDS = 24 * 3600
# Telephony clocks drift; a call "starting" a little in the future is accepted.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_TRANSCRIPT_TYPE = "application/json"


def _check_call(incoming: IncomingCall, now: dt.datetime) -> None:
    if incoming.direction not in ("inbound", "outbound"):
        raise InvalidInput("direction is inbound or outbound")
    if incoming.started_at.tzinfo is None:
        raise InvalidInput("the start time must include a UTC offset")
    if incoming.started_at > now + _CLOCK_SKEW:
        raise InvalidInput("the call cannot start in the future")
    if not 0 <= incoming.duration_seconds <= MAX_DURATION_SECONDS:
        raise InvalidInput("duration must be between 0 and 86400 seconds")


def prepare_media(
    recording: bytes | None,
    transcript: bytes | None,
    known_spans: tuple[AudioSpan, ...] = (),
) -> tuple[tuple[bytes, str] | None, transcripts.RedactedTranscript | None, bool]:
    """Checked recording (with card spans silenced) and redacted transcript.

    `known_spans` come from a transcript stored before the recording arrived.
    Returns (recording and its type, redacted transcript, whether audio was
    silenced). Raises before anything is stored when the delivery is unsafe.
    """
    redacted = None
    if transcript is not None:
        redacted = transcripts.redact(transcripts.parse(transcript))
    if recording is None:
        return None, redacted, False

    check_recording_size(recording)
    kind = sniff_audio(recording)
    spans = list(known_spans)
    if redacted is not None and redacted.redactions:
        # A card number was spoken: the recording is kept only once those
        # seconds are silence. Without timings for every span, or in audio that
        # cannot be decoded, the recording is refused rather than stored with
        # the digits.
        if not redacted.audio_complete:
            raise RecordingNotSilenceable()
        spans.extend(redacted.audio)
    if not spans:
        return (recording, kind), redacted, False
    spans.sort(key=lambda span: span.start)
    return (silence(recording, kind, tuple(spans)), kind), redacted, True


def _expired(started: dt.datetime, days: int, now: dt.datetime) -> bool:
    return days == 0 or started + dt.timedelta(days=days) <= now


async def ingest(
    db: Database,
    vault: Vault,
    store: BlobStore,
    claims: Claims,
    incoming: IncomingCall,
    now: dt.datetime,
) -> Ingested:
    """Record one call and keep what the practice's retention allows."""
    practice = claims.practice_id
    if practice is None:
        raise NotFound("no practice to record the call in")
    _check_call(incoming, now)

    # The opt-out is honoured first, in memory: what may not be kept is dropped
    # before it is even examined, and no byte of it is written anywhere.
    async with db.transaction(claims) as conn:
        chosen = await call_settings.load(conn, practice)
    not_stored: list[str] = []
    delivered_recording, delivered_transcript = incoming.recording, incoming.transcript
    if delivered_recording is not None and _expired(
        incoming.started_at, chosen.recording_retention_days, now
    ):
        delivered_recording = None
        not_stored.append("recording: the practice keeps no recordings this old")
    if delivered_transcript is not None and _expired(
        incoming.started_at, chosen.transcript_retention_days, now
    ):
        delivered_transcript = None
        not_stored.append("transcript: the practice keeps no transcripts this old")

    # A kept recording is silenced by the transcript's spans even when the
    # transcript itself is not kept. Re-encoding a long MP3 or Ogg recording
    # takes seconds of CPU, so it runs beside the event loop, not on it.
    recording, redacted, silenced = await asyncio.to_thread(
        prepare_media, delivered_recording, incoming.transcript, incoming.known_spans
    )
    found = redacted.redactions if redacted else 0
    if delivered_transcript is None:
        redacted = None
    call_id = incoming.call_id or uuid.uuid4()
    try:
        caller_tag = (
            vault.index.phone(practice, incoming.caller_number)
            if incoming.caller_number
            else None
        )
    except NormalizationError:
        raise InvalidInput("the caller number must be a phone number") from None

    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select * from phi_api.ingest_call(%s, %s, %s, %s, %s, %s)",
            (
                call_id,
                incoming.direction,
                vault.seal_optional(
                    practice, "calls", "caller_number", call_id, incoming.caller_number
                ),
                caller_tag,
                incoming.started_at,
                incoming.duration_seconds,
            ),
        )
        row = await cur.fetchone()
    patient_id = row["patient_id"] if row else None

    stored = {"recording": False, "transcript": False}
    wanted: list[tuple[str, DataClass, bytes, str, int, bool]] = []
    if recording is not None:
        data, content_type = recording
        wanted.append(
            ("recording", DataClass.RECORDINGS, data, content_type, 0, silenced)
        )
    if redacted is not None:
        wanted.append(
            (
                "transcript",
                DataClass.TRANSCRIPTS,
                redacted.document,
                _TRANSCRIPT_TYPE,
                redacted.redactions,
                False,
            )
        )
    for kind, data_class, data, content_type, count, quiet in wanted:
        stored[kind] = await _store_one(
            db,
            store,
            claims,
            call_id,
            patient_id,
            kind,
            data_class,
            data,
            content_type,
            count,
            quiet,
            incoming.started_at,
            now,
        )
    return Ingested(
        call_id=call_id,
        patient_id=patient_id,
        recording_stored=stored["recording"],
        transcript_stored=stored["transcript"],
        redactions=found,
        silenced=silenced and stored["recording"],
        not_stored=tuple(not_stored),
    )


async def _store_one(
    db: Database,
    store: BlobStore,
    claims: Claims,
    call_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    kind: str,
    data_class: DataClass,
    data: bytes,
    content_type: str,
    redactions: int,
    silenced: bool,
    started_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    # A retried delivery finds the object already attached and stores nothing.
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select phi_api.call_media_exists(%s, %s) as present", (call_id, kind)
        )
        row = await cur.fetchone()
    if row and row["present"]:
        return False

    # Bucketed by the call's month, so the period key and the retention clock
    # (which runs from the start of the call) agree.
    object_id = uuid.uuid4()
    await store.put(
        claims, data_class, object_id, io.BytesIO(data), at=started_at,
        patient_id=patient_id,
    )  # fmt: skip
    async with db.transaction(claims) as conn:
        await conn.execute(
            "select phi_api.attach_call_media(%s, %s, %s, %s, %s, %s, %s)",
            (call_id, kind, object_id, content_type, redactions, silenced, now),
        )
    return True
