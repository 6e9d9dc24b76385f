"""Retention: with recordings kept one day and the clock moved on, the sweep
crypto-shreds an expired recording for good while a call on legal hold survives;
with recordings opted out, nothing of a recording is written anywhere."""

from __future__ import annotations

from tests.conftest import admin_connection
from tests.functional.calls.helpers import (
    blob_files,
    integration_token,
    make_wav,
    upload,
)
from tests.support.world import build_world

from perpetua.calls.retention import sweep


def _retention(world, recordings: int, transcripts: int = 365):
    saved = world.api(
        "owner",
        "PUT",
        "/api/v1/practice/call-settings",
        json={
            "recording_retention_days": recordings,
            "transcript_retention_days": transcripts,
        },
    )
    assert saved.status_code == 200, saved.text


def _sweep(client, clock):
    app = client.app
    return client.portal.call(
        sweep, app.state.services.db, app.state.calls.store, clock
    )


def test_expired_recording_is_unrecoverable_and_held_call_survives(
    client, target, clock, settings
):
    world = build_world(client, target)
    _retention(world, recordings=1)
    token = integration_token(world)
    expiring = upload(world, token, clock, recording=make_wav(1.0)).json()["call_id"]
    held = upload(world, token, clock, recording=make_wav(1.0)).json()["call_id"]

    refused = world.api(
        "front_desk",
        "PUT",
        f"/api/v1/calls/{held}/legal-hold",
        json={"reason": "Records request from counsel"},
    )
    assert refused.status_code == 403
    placed = world.api(
        "manager",
        "PUT",
        f"/api/v1/calls/{held}/legal-hold",
        json={"reason": "Records request from counsel"},
    )
    assert placed.status_code == 204, placed.text
    with admin_connection(target) as conn:
        audit_before = conn.execute("select count(*) from audit.events").fetchone()[0]

    # Nothing is due yet; a day and a bit later the unheld recording is.
    assert _sweep(client, clock).objects_deleted == 0
    clock.advance(days=2)
    report = _sweep(client, clock)
    assert report.objects_deleted == 1
    # Back to the present, where the members' sessions are still open.
    clock.advance(days=-2)

    gone = world.api("owner", "GET", f"/api/v1/calls/{expiring}/recording")
    assert gone.status_code == 410
    kept = world.api("owner", "GET", f"/api/v1/calls/{held}/recording")
    assert kept.status_code == 200
    assert kept.content[:4] == b"RIFF"

    with admin_connection(target) as conn:
        rows = conn.execute(
            "select m.call_id::text, b.wrapped_data_key is null, b.certificate_id, "
            "m.deleted_at is not null "
            "from phi.call_media m join phi.blob_objects b on b.id = m.object_id "
            "where m.practice_id = %s",
            (world.practice_id,),
        ).fetchall()
        certificates = conn.execute(
            "select count(*) from phi.deletion_certificates where practice_id = %s",
            (world.practice_id,),
        ).fetchone()[0]
        audit_after = conn.execute("select count(*) from audit.events").fetchone()[0]
    state = {r[0]: r[1:] for r in rows}
    # The data key is gone from the database and the ciphertext from the store.
    assert state[expiring][0] is True
    assert state[expiring][1] is not None
    assert state[expiring][2] is True
    assert state[held] == (False, None, False)
    assert certificates == 1
    assert len(blob_files(settings.data_dir, world.practice_id)) == 1
    # The audit log only grows, whatever retention deletes.
    assert audit_after > audit_before

    # Once the whole month has expired its key is destroyed; the held recording
    # was moved out of it and still plays.
    clock.advance(days=70)
    assert _sweep(client, clock).periods_destroyed == 1
    clock.advance(days=-70)
    still = world.api("owner", "GET", f"/api/v1/calls/{held}/recording")
    assert still.status_code == 200

    # Released, the held recording expires like any other.
    released = world.api("owner", "DELETE", f"/api/v1/calls/{held}/legal-hold")
    assert released.status_code == 204
    clock.advance(days=70)
    assert _sweep(client, clock).objects_deleted == 1
    assert blob_files(settings.data_dir, world.practice_id) == []
    clock.advance(days=-70)
    assert (
        world.api("owner", "GET", f"/api/v1/calls/{held}/recording").status_code == 410
    )


def test_opted_out_recordings_are_never_written(client, target, clock, settings):
    world = build_world(client, target)
    _retention(world, recordings=0)
    token = integration_token(world)
    made = upload(
        world, token, clock, recording=make_wav(1.0), transcript="Caller: hello"
    )
    assert made.status_code == 201, made.text
    result = made.json()
    assert result["recording_stored"] is False
    assert result["transcript_stored"] is True
    assert result["not_stored"]

    practice_blobs = settings.data_dir / "blobs" / world.practice_id
    assert not (practice_blobs / "recordings").exists()
    assert [
        p.parent.parent.name for p in blob_files(settings.data_dir, world.practice_id)
    ] == ["transcripts"]
    with admin_connection(target) as conn:
        counts = conn.execute(
            "select (select count(*) from phi.blob_objects where practice_id = %s "
            "and data_class = 'recordings'), (select count(*) from phi.call_media "
            "where practice_id = %s and kind = 'recording')",
            (world.practice_id, world.practice_id),
        ).fetchone()
    assert counts == (0, 0)
    missing = world.api("owner", "GET", f"/api/v1/calls/{result['call_id']}/recording")
    assert missing.status_code == 404
