"""Call media leaves in the termination export: each call's redacted transcript
and its recording, read through the calls service (each read recorded), then
become unreadable with the rest of the practice's PHI."""

from __future__ import annotations

import io
import json
import zipfile

from tests.conftest import admin_connection, scratch_dir
from tests.functional.calls.helpers import integration_token, make_wav, upload
from tests.support.world import build_world

from perpetua.cli import main as cli

PASSPHRASE = "correct horse battery staple"


def test_export_carries_recordings_and_transcripts(
    client, target, clock, monkeypatch, capsys
):
    world = build_world(client, target)
    token = integration_token(world)
    audio = make_wav(seconds=1.0)
    made = upload(
        world,
        token,
        clock,
        recording=audio,
        transcript="Agent: Hello, synthetic clinic.\nCaller: I need a visit.",
    )
    assert made.status_code == 201, made.text
    call_id = made.json()["call_id"]
    with admin_connection(target) as conn:
        name = conn.execute(
            "select name from app.practices where id = %s", (world.practice_id,)
        ).fetchone()[0]

    done = world.api(
        "owner",
        "POST",
        "/api/v1/baa/termination",
        json={"confirmation": name, "passphrase": PASSPHRASE},
    )

    assert done.status_code == 201, done.text
    counts = done.json()["termination"]["export_counts"]
    assert (counts["recordings"], counts["transcripts"]) == (1, 1)
    saved = scratch_dir("perpetua-export-") / "practice.ppex"
    saved.write_bytes(
        world.api("owner", "GET", "/api/v1/baa/termination/export").content
    )
    out = saved.with_name("opened.zip")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSPHRASE + "\n"))
    assert cli.main(["export", "open", str(saved), "--out", str(out)]) == 0
    capsys.readouterr()
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["media_included"] is True
        assert archive.read(f"recordings/{call_id}.wav") == audio
        turns = json.loads(archive.read(f"transcripts/{call_id}.json"))
    assert "I need a visit." in json.dumps(turns)

    gone = world.api("owner", "GET", f"/api/v1/calls/{call_id}/transcript")
    assert gone.status_code >= 400
