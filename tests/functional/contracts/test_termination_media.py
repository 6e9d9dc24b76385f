"""Call media leaves in the termination export: each call's redacted transcript
and its recording, read through the calls service (each read recorded), then
become unreadable with the rest of the practice's PHI."""

from __future__ import annotations

import json
import zipfile

from tests.functional.calls.helpers import integration_token, make_wav, upload
from tests.functional.contracts.helpers import terminate_and_open
from tests.support.world import build_world


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

    done, out = terminate_and_open(world, target, monkeypatch, capsys)

    counts = done.json()["termination"]["export_counts"]
    assert (counts["recordings"], counts["transcripts"]) == (1, 1)
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["media_included"] is True
        assert archive.read(f"recordings/{call_id}.wav") == audio
        turns = json.loads(archive.read(f"transcripts/{call_id}.json"))
    assert "I need a visit." in json.dumps(turns)

    gone = world.api("owner", "GET", f"/api/v1/calls/{call_id}/transcript")
    assert gone.status_code >= 400
