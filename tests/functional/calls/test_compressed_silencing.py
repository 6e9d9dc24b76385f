"""MP3 and Ogg recordings whose transcript has a timed card number are decoded,
silenced over the card span (with the same margin as WAV), encoded again in the
same container and codec, and only that is stored; audio that does not decode is
refused with nothing written, and an opted-out recording is never examined."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile
from tests.conftest import admin_connection, scratch_dir
from tests.functional.calls.helpers import (
    TONE_LEVEL,
    blob_files,
    decode,
    integration_token,
    make_compressed,
    rms,
    timed_turns,
    upload,
)
from tests.support.world import build_world

from perpetua.calls.media import sniff_audio
from perpetua.cli.calls_commands import import_directory

# The card is read between 1.0 s and 3.0 s of a six-second tone (`timed_turns`);
# the margin widens the silence to 0.75 s - 3.25 s. Windows are measured a little
# away from those edges, where a lossy codec smears the step.
SPOKEN = (1.0, 3.0)
BEFORE = (0.1, 0.6)
AFTER = (3.5, 5.8)
TONE_RMS = TONE_LEVEL / math.sqrt(2)

COMPRESSED = [
    pytest.param("MP3", "MPEG_LAYER_III", "audio/mpeg", id="mp3"),
    pytest.param("OGG", "VORBIS", "audio/ogg", id="ogg-vorbis"),
    pytest.param("OGG", "OPUS", "audio/ogg", id="ogg-opus"),
]


def _assert_silenced_over_the_card(stored: bytes, codec: str) -> None:
    assert soundfile.info(io.BytesIO(stored)).subtype == codec
    frames, rate = decode(stored)
    assert abs(len(frames) / rate - 6.0) < 0.2
    assert rms(frames, rate, *SPOKEN) < 0.001
    assert rms(frames, rate, *BEFORE) > 0.8 * TONE_RMS
    assert rms(frames, rate, *AFTER) > 0.8 * TONE_RMS


def _call_count(target, practice_id: str) -> int:
    with admin_connection(target) as conn:
        row = conn.execute(
            "select count(*) from phi.calls where practice_id = %s", (practice_id,)
        ).fetchone()
    return row[0]


@pytest.mark.parametrize(("container", "codec", "content_type"), COMPRESSED)
def test_compressed_recording_is_stored_with_the_card_span_silenced(
    client, target, clock, container, codec, content_type
):
    world = build_world(client, target)
    token = integration_token(world)
    delivered = make_compressed(container, codec)
    # The tone is loud where the card is read: the test would fail unsilenced.
    frames, rate = decode(delivered)
    assert rms(frames, rate, *SPOKEN) > 0.8 * TONE_RMS

    made = upload(world, token, clock, recording=delivered, transcript=timed_turns())
    assert made.status_code == 201, made.text
    result = made.json()
    assert result["recording_stored"]
    assert result["silenced"]
    assert result["redactions"] == 1

    played = world.api(
        "front_desk", "GET", f"/api/v1/calls/{result['call_id']}/recording"
    )
    assert played.status_code == 200
    assert played.headers["content-type"] == content_type
    stored = played.content
    assert stored != delivered
    assert sniff_audio(stored) == content_type
    _assert_silenced_over_the_card(stored, codec)


def test_stereo_recording_is_silenced_on_both_channels(client, target, clock):
    world = build_world(client, target)
    token = integration_token(world)
    delivered = make_compressed("OGG", "VORBIS", rate=16000, channels=2)

    made = upload(world, token, clock, recording=delivered, transcript=timed_turns())
    assert made.status_code == 201, made.text
    played = world.api(
        "owner", "GET", f"/api/v1/calls/{made.json()['call_id']}/recording"
    )
    frames, rate = decode(played.content)
    assert frames.shape[1] == 2
    assert rate == 16000
    for channel in (0, 1):
        one = frames[:, channel : channel + 1]
        assert rms(one, rate, *SPOKEN) < 0.001
        assert rms(one, rate, *AFTER) > 0.8 * TONE_RMS


@pytest.mark.parametrize(
    "corrupt",
    [
        # First bytes of an MP3 (a tag, then one frame header) and nothing after.
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400),
        b"\xff\xfb\x90\x64" + bytes(3000),
        b"OggS\x00\x02" + bytes(200),
    ],
    ids=["mp3-tagged", "mp3-frame", "ogg"],
)
def test_compressed_recording_that_does_not_decode_is_refused_with_nothing_stored(
    client, target, clock, settings, corrupt
):
    world = build_world(client, target)
    token = integration_token(world)

    refused = upload(world, token, clock, recording=corrupt, transcript=timed_turns())
    assert refused.status_code == 422
    assert refused.json()["code"] == "recording_not_silenceable"
    assert blob_files(settings.data_dir, world.practice_id) == []
    assert _call_count(target, world.practice_id) == 0


def test_opted_out_compressed_recording_is_never_examined_or_written(
    client, target, clock, settings
):
    world = build_world(client, target)
    saved = world.api(
        "owner",
        "PUT",
        "/api/v1/practice/call-settings",
        json={"recording_retention_days": 0, "transcript_retention_days": 365},
    )
    assert saved.status_code == 200, saved.text
    token = integration_token(world)

    # Dropped before it is decoded: even audio that would be refused is not looked at.
    for recording in (
        make_compressed("MP3", "MPEG_LAYER_III"),
        b"\xff\xfb\x90\x64" + bytes(3000),
    ):
        made = upload(
            world, token, clock, recording=recording, transcript=timed_turns()
        )
        assert made.status_code == 201, made.text
        assert made.json()["recording_stored"] is False
        assert made.json()["silenced"] is False

    assert {
        p.parent.parent.name for p in blob_files(settings.data_dir, world.practice_id)
    } == {"transcripts"}
    with admin_connection(target) as conn:
        counts = conn.execute(
            "select (select count(*) from phi.blob_objects where practice_id = %s "
            "and data_class = 'recordings'), (select count(*) from phi.call_media "
            "where practice_id = %s and kind = 'recording')",
            (world.practice_id, world.practice_id),
        ).fetchone()
    assert counts == (0, 0)


@pytest.fixture
def folder() -> Iterator[Path]:
    made = scratch_dir("calls-import-ogg-")
    yield made
    shutil.rmtree(made)


def test_import_silences_an_ogg_recording_like_the_api(client, target, clock, folder):
    world = build_world(client, target)
    started = (clock.now() - dt.timedelta(hours=2)).isoformat()
    (folder / "a.ogg").write_bytes(make_compressed("OGG", "OPUS"))
    (folder / "a.json").write_text(json.dumps(timed_turns()))
    (folder / "a.call.json").write_text(
        json.dumps(
            {
                "direction": "inbound",
                "started_at": started,
                "duration_seconds": 6,
                "recording": "a.ogg",
                "transcript": "a.json",
            }
        )
    )

    report = client.portal.call(
        lambda: import_directory(
            client.app.state.calls,
            uuid.UUID(world.practice_id),
            folder,
            show_progress=False,
        )
    )
    assert report.failed == []
    assert report.recordings == 1
    assert report.redactions == 1

    with admin_connection(target) as conn:
        (call,) = conn.execute(
            "select id from phi.calls where practice_id = %s", (world.practice_id,)
        ).fetchone()
    played = world.api("owner", "GET", f"/api/v1/calls/{call}/recording")
    assert played.status_code == 200
    assert played.headers["content-type"] == "audio/ogg"
    _assert_silenced_over_the_card(played.content, "OPUS")
