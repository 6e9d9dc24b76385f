"""Uploads from telephony integrations: only the redacted transcript is stored,
card numbers spoken in a WAV recording are silenced before it is stored, and
reading either is recorded before a byte is returned."""

from __future__ import annotations

from tests.conftest import admin_connection, admin_dump
from tests.functional.calls.helpers import (
    CARD,
    LEVEL,
    RATE,
    blob_files,
    integration_token,
    make_wav,
    samples,
    timed_turns,
    upload,
)
from tests.support.world import build_world

from perpetua.redaction import CARD_MARKER


def test_upload_stores_redacted_transcript_and_silenced_recording(
    client, target, clock, settings
):
    world = build_world(client, target)
    patient = world.patient()
    token = integration_token(world)

    made = upload(
        world,
        token,
        clock,
        recording=make_wav(),
        transcript=timed_turns(),
        caller_number=patient["phone"],
    )
    assert made.status_code == 201, made.text
    result = made.json()
    assert result["recording_stored"]
    assert result["transcript_stored"]
    assert result["redactions"] == 1
    assert result["silenced"]
    assert result["patient_id"] == patient["id"]
    call = result["call_id"]

    # Only the redacted text exists anywhere: not in the database, not in a file.
    digits = CARD.replace(" ", "")
    dump = admin_dump(target)
    assert CARD not in dump
    assert digits not in dump
    for path in blob_files(settings.data_dir, world.practice_id):
        stored = path.read_bytes()
        assert CARD.encode() not in stored
        assert digits.encode() not in stored

    read = world.api("front_desk", "GET", f"/api/v1/calls/{call}/transcript")
    assert read.status_code == 200, read.text
    text = " ".join(t["text"] for t in read.json()["turns"])
    assert CARD_MARKER in text
    assert "4111" not in text

    played = world.api("front_desk", "GET", f"/api/v1/calls/{call}/recording")
    assert played.status_code == 200
    assert played.headers["content-type"] == "audio/wav"
    audio = samples(played.content)
    assert audio[int(0.2 * RATE)] == LEVEL  # before the number
    assert audio[int(2.0 * RATE)] == 0  # while it was read out
    assert audio[int(5.2 * RATE)] == LEVEL  # after it

    with admin_connection(target) as conn:
        events = conn.execute(
            "select action, resource_type, outcome, patient_ids from audit.events "
            "where request_id = %s order by occurred_at",
            (played.headers["x-request-id"],),
        ).fetchall()
        viewed = conn.execute(
            "select action, outcome from audit.events "
            "where request_id = %s and resource_type = 'call_transcript'",
            (read.headers["x-request-id"],),
        ).fetchall()
    assert ("playback", "call_recording", "success") in [e[:3] for e in events]
    assert all(str(e[3][0]) == patient["id"] for e in events if e[1] != "blob")
    assert viewed == [("view", "success")]


def test_integrations_upload_text_transcripts_and_people_cannot(client, target, clock):
    world = build_world(client, target)
    token = integration_token(world)
    made = upload(
        world,
        token,
        clock,
        transcript=f"Agent: Card number please.\nCaller: it is {CARD}\nAgent: Thanks.",
    )
    assert made.status_code == 201, made.text
    call = made.json()["call_id"]
    turns = world.api("owner", "GET", f"/api/v1/calls/{call}/transcript").json()
    assert [t["speaker"] for t in turns["turns"]] == ["Agent", "Caller", "Agent"]
    assert turns["turns"][1]["text"] == f"it is {CARD_MARKER}"

    # A member's session, or a token without calls:create, records nothing.
    refused = upload(world, world.headers["owner"], clock, transcript="Caller: hi")
    assert refused.status_code == 403
    assert refused.json()["code"] == "integration_only"
    narrow = integration_token(world, ("calls:view",))
    assert upload(world, narrow, clock, transcript="Caller: hi").status_code == 403


def test_only_audio_that_can_be_made_safe_is_stored(client, target, clock):
    world = build_world(client, target)
    token = integration_token(world)
    # MP3 by its first bytes, but no audio decodes from it: the card number
    # cannot be silenced, so nothing is stored.
    mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)
    refused = upload(world, token, clock, recording=mp3, transcript=timed_turns())
    assert refused.status_code == 422
    assert refused.json()["code"] == "recording_not_silenceable"

    # Without timings the seconds to silence are unknown: refused as well.
    untimed = upload(
        world, token, clock, recording=make_wav(), transcript=f"Caller: {CARD}"
    )
    assert untimed.status_code == 422

    # Told by its first bytes, whatever it claims to be.
    pdf = upload(world, token, clock, recording=b"%PDF-1.7 not audio at all")
    assert pdf.status_code == 415
    assert pdf.json()["code"] == "unsupported_media"

    # Without a card number nothing needs silencing, so the bytes are stored as
    # delivered (not decoded): the same MP3 with a clean transcript is fine, and
    # so is OGG.
    clean = upload(
        world, token, clock, recording=mp3, transcript="Caller: I need to reschedule"
    )
    assert clean.status_code == 201, clean.text
    ogg = upload(world, token, clock, recording=b"OggS\x00\x02" + bytes(200))
    assert ogg.status_code == 201, ogg.text
    with admin_connection(target) as conn:
        count = conn.execute(
            "select count(*) from phi.calls where practice_id = %s",
            (world.practice_id,),
        ).fetchone()
    assert count == (2,)
