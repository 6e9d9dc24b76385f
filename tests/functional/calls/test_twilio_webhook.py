"""The Twilio voice webhook: a callback is accepted only with a signature made
with the practice's own auth token; anything else is refused and stores nothing."""

from __future__ import annotations

import uuid

from tests.conftest import admin_connection, admin_dump
from tests.functional.calls.helpers import CARD
from tests.support.world import build_world
from twilio.request_validator import RequestValidator

from perpetua.redaction import CARD_MARKER

TOKEN = "0123456789abcdef0123456789abcdef"
SID = "AC" + "0" * 32


def _url(practice_id: str) -> str:
    return f"https://testserver/api/v1/telephony/twilio/{practice_id}/voice"


def _post(client, practice_id, params, token=TOKEN, signature=None):
    signed = signature or RequestValidator(token).compute_signature(
        _url(practice_id), params
    )
    return client.post(
        f"/api/v1/telephony/twilio/{practice_id}/voice",
        data=params,
        headers={"X-Twilio-Signature": signed},
    )


def _configure(world, target):
    saved = world.api(
        "owner",
        "PUT",
        "/api/v1/practice/call-settings",
        json={
            "recording_retention_days": 365,
            "transcript_retention_days": 365,
            "twilio_account_sid": SID,
            "twilio_auth_token": TOKEN,
        },
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["twilio_configured"] is True
    assert TOKEN not in saved.text
    # Sealed before it reaches the database.
    assert TOKEN not in admin_dump(target)


def _calls(target, practice_id):
    with admin_connection(target) as conn:
        return conn.execute(
            "select (select count(*) from phi.calls where practice_id = %s), "
            "(select count(*) from phi.call_media where practice_id = %s)",
            (practice_id, practice_id),
        ).fetchone()


def _completed(call_sid: str, caller: str = "+15550100999") -> dict[str, str]:
    return {
        "AccountSid": SID,
        "CallSid": call_sid,
        "CallStatus": "completed",
        "CallDuration": "42",
        "Direction": "inbound",
        "From": caller,
        "To": "+15550100000",
    }


def test_webhook_with_a_bad_signature_is_refused_and_stores_nothing(client, target):
    world = build_world(client, target)
    params = _completed("CA" + "1" * 32)
    # Before the owner stores a token, even a well-formed signature is refused.
    assert _post(client, world.practice_id, params).status_code == 403
    _configure(world, target)

    forged = _post(client, world.practice_id, params, token="f" * 32)
    assert forged.status_code == 403
    assert forged.json()["code"] == "webhook_signature_invalid"
    unsigned = client.post(
        f"/api/v1/telephony/twilio/{world.practice_id}/voice", data=params
    )
    assert unsigned.status_code == 403

    # A signature over other parameters does not cover these.
    good = RequestValidator(TOKEN).compute_signature(_url(world.practice_id), params)
    tampered = _post(
        client, world.practice_id, {**params, "CallDuration": "1"}, signature=good
    )
    assert tampered.status_code == 403

    # An unknown practice gets the same refusal as a wrong signature.
    unknown = _post(client, str(uuid.uuid4()), params)
    assert unknown.status_code == 403
    assert unknown.json()["code"] == forged.json()["code"]
    assert _calls(target, world.practice_id) == (0, 0)


def test_signed_callbacks_record_the_call_and_its_redacted_transcript(client, target):
    world = build_world(client, target)
    _configure(world, target)
    patient = world.patient(phone="+1 555 0100 321")
    call_sid = "CA" + "3" * 32

    done = _post(client, world.practice_id, _completed(call_sid, "+15550100321"))
    assert done.status_code == 200, done.text
    assert done.headers["content-type"].startswith("text/xml")
    again = _post(client, world.practice_id, _completed(call_sid, "+15550100321"))
    assert again.status_code == 200
    ringing = {**_completed("CA" + "4" * 32), "CallStatus": "ringing"}
    assert _post(client, world.practice_id, ringing).status_code == 200

    transcription = {
        "AccountSid": SID,
        "CallSid": call_sid,
        "TranscriptionStatus": "completed",
        "TranscriptionText": f"Hi, I want to pay with {CARD}",
        "From": "+15550100321",
        "Direction": "inbound",
    }
    assert _post(client, world.practice_id, transcription).status_code == 200
    assert _calls(target, world.practice_id) == (1, 1)

    with admin_connection(target) as conn:
        call_id, linked = conn.execute(
            "select id, patient_id from phi.calls where practice_id = %s",
            (world.practice_id,),
        ).fetchone()
    assert str(linked) == patient["id"]
    read = world.api("manager", "GET", f"/api/v1/calls/{call_id}/transcript")
    assert read.status_code == 200
    assert read.json()["turns"][0]["text"] == f"Hi, I want to pay with {CARD_MARKER}"
