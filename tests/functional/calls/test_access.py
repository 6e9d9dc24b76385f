"""Who may read calls' transcripts and recordings, place holds and choose
retention, through the API and the console: the permission matrix's calls row,
tenancy, and refusals that say what happened without showing refused text."""

from __future__ import annotations

import datetime as dt

from tests.conftest import admin_connection
from tests.functional.calls.helpers import (
    CARD,
    integration_token,
    make_wav,
    timed_turns,
    upload,
)
from tests.support.console import csrf_of, sign_in_console
from tests.support.world import build_world

from perpetua.redaction import CARD_MARKER


def test_roles_and_practices_reach_only_what_the_matrix_allows(client, target, clock):
    world = build_world(client, target)
    own = world.patient()
    world.appointment(own["id"])
    stranger = world.patient()
    token = integration_token(world)
    mine = upload(
        world, token, clock, recording=make_wav(1.0), transcript="Caller: hello",
        caller_number=own["phone"],
    ).json()["call_id"]  # fmt: skip
    theirs = upload(
        world, token, clock, transcript="Caller: hi", caller_number=stranger["phone"]
    ).json()["call_id"]

    def status(role, path, method="GET", **kw):
        return world.api(role, method, path, **kw).status_code

    window = {
        "since": (clock.now() - dt.timedelta(days=1)).isoformat(),
        "until": (clock.now() + dt.timedelta(days=1)).isoformat(),
    }
    logged = world.api("front_desk", "GET", "/api/v1/calls/log", params=window)
    assert logged.status_code == 200
    assert {c["id"] for c in logged.json()} == {mine, theirs}
    assert all(c["has_transcript"] for c in logged.json())
    own_log = world.api("provider", "GET", "/api/v1/calls/log", params=window)
    assert [c["id"] for c in own_log.json()] == [mine]

    for role in ("owner", "manager", "front_desk"):
        assert status(role, f"/api/v1/calls/{theirs}/transcript") == 200
    assert status("biller", f"/api/v1/calls/{mine}/transcript") == 403
    assert status("biller", f"/api/v1/calls/{mine}/recording") == 403
    # A provider hears and reads only calls of their own patients.
    assert status("provider", f"/api/v1/calls/{mine}/recording") == 200
    assert status("provider", f"/api/v1/calls/{theirs}/transcript") == 404
    assert status("provider", f"/api/v1/calls/{theirs}/media") == 404

    hold = {"json": {"reason": "Subpoena"}}
    assert status("provider", f"/api/v1/calls/{mine}/legal-hold", "PUT", **hold) == 403
    settings = {"json": {"recording_retention_days": 1, "transcript_retention_days": 1}}
    assert status("manager", "/api/v1/practice/call-settings", "PUT", **settings) == 403
    assert status("manager", "/api/v1/practice/call-settings") == 200
    assert status("manager", "/api/v1/practice/deletion-certificates") == 403

    # Another practice sees none of it, whatever its role.
    other = build_world(client, target)
    for path in (
        f"/api/v1/calls/{mine}/transcript",
        f"/api/v1/calls/{mine}/recording",
        f"/api/v1/calls/{mine}/media",
    ):
        assert other.api("owner", "GET", path).status_code == 404
    placed = other.api("owner", "PUT", f"/api/v1/calls/{mine}/legal-hold", **hold)
    assert placed.status_code == 404

    with admin_connection(target) as conn:
        denied = conn.execute(
            "select distinct actor_role, resource_type from audit.events "
            "where practice_id = %s and outcome = 'denied'",
            (world.practice_id,),
        ).fetchall()
        holds = conn.execute("select count(*) from phi.call_holds").fetchone()[0]
    # Every refusal is on record, with who was refused and what they wanted.
    assert {
        ("biller", "call_transcript"),
        ("biller", "call_recording"),
        ("provider", "call_legal_hold"),
        ("manager", "call_settings"),
        ("manager", "deletion_certificate"),
    } <= set(denied)
    assert holds == 0


def test_console_lists_reads_plays_and_holds_calls(client, target, clock):
    world = build_world(client, target)
    token = integration_token(world)
    call = upload(
        world, token, clock, recording=make_wav(), transcript=timed_turns()
    ).json()["call_id"]

    console = sign_in_console(world, "front_desk")
    listing = console.get("/calls")
    assert listing.status_code == 200
    assert call in listing.text
    page = console.get(f"/calls/{call}")
    assert page.status_code == 200
    assert 'data-testid="hold-form"' not in page.text
    transcript = console.get(f"/calls/{call}/transcript")
    assert transcript.status_code == 200
    assert CARD_MARKER in transcript.text
    assert CARD not in transcript.text
    played = console.get(f"/calls/{call}/recording")
    assert played.status_code == 200
    assert played.content[:4] == b"RIFF"
    assert played.headers["cache-control"] == "no-store"
    assert console.get("/settings/calls").status_code == 403

    console = sign_in_console(world, "biller")
    assert console.get(f"/calls/{call}/transcript").status_code == 403

    console = sign_in_console(world, "manager")
    token_field = csrf_of(console, f"/calls/{call}")
    refused = console.post(
        f"/calls/{call}/hold",
        data={"reason": f"card {CARD}", "csrf_token": token_field},
    )
    assert refused.status_code == 422
    assert CARD not in refused.text
    held = console.post(
        f"/calls/{call}/hold",
        data={"reason": "Complaint review", "csrf_token": token_field},
        follow_redirects=False,
    )
    assert held.status_code == 303
    assert "Complaint review" in console.get(f"/calls/{call}").text

    console = sign_in_console(world, "owner")
    saved = console.post(
        "/settings/calls",
        data={
            "recording_retention_days": "0",
            "transcript_retention_days": "30",
            "twilio_account_sid": "",
            "twilio_auth_token": "",
            "csrf_token": csrf_of(console, "/settings/calls"),
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    chosen = world.api("owner", "GET", "/api/v1/practice/call-settings").json()
    assert chosen["recording_retention_days"] == 0
    assert chosen["transcript_retention_days"] == 30
    assert "0 days" in console.get("/settings/calls").text
