"""Fetching Twilio recordings: a signed recording callback queues the fetch, the
worker downloads the audio from the practice's own account at the configured API
base (never from the callback's RecordingUrl), stores it like an upload and
deletes it at Twilio.

Twilio is played by a local HTTP server that serves recording media and deletes
recordings like Twilio's REST API, checking basic auth, so that the `twilio`
package's own request code runs end to end. It is a stand-in: nothing here talks
to Twilio itself."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.conftest import admin_connection
from tests.functional.calls.helpers import CARD, blob_files, make_wav
from tests.functional.calls.test_twilio_webhook import (
    SID,
    TOKEN,
    _completed,
    _configure,
    _post,
)
from tests.support.console import sign_in_console
from tests.support.world import build_world

from perpetua.calls.fetch import TwilioFetcher
from perpetua.calls.twilio import api_base
from perpetua.config import Settings
from perpetua.errors import ConfigError

CALL_SID = "CA" + "5" * 32
RECORDING_SID = "RE" + "a" * 32


@dataclass
class FakeTwilio:
    """Recordings by SID, answers to script per request, and what was asked."""

    account_sid: str
    auth_token: str
    recordings: dict[str, bytes] = field(default_factory=dict)
    scripted: list[int] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"


def _serve(fake: FakeTwilio) -> ThreadingHTTPServer:
    prefix = f"/2010-04-01/Accounts/{fake.account_sid}/Recordings/"

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"", kind: str = "") -> None:
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, method: str) -> None:
            fake.requests.append((method, self.path))
            expected = base64.b64encode(
                f"{fake.account_sid}:{fake.auth_token}".encode()
            ).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._answer(401, b'{"code": 20003}', "application/json")
                return
            if fake.scripted:
                self._answer(fake.scripted.pop(0))
                return
            if not self.path.startswith(prefix):
                self._answer(404)
                return
            sid, _, suffix = self.path[len(prefix) :].partition(".")
            if sid not in fake.recordings:
                self._answer(404, b'{"code": 20404}', "application/json")
            elif method == "GET" and suffix in ("wav", "mp3"):
                self._answer(200, fake.recordings[sid], "audio/x-wav")
            elif method == "DELETE" and suffix == "json":
                del fake.recordings[sid]
                self._answer(204)
            else:
                self._answer(405)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(SID, TOKEN)
    server = _serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[FakeTwilio]:
    """Another host a forged RecordingUrl could name."""
    fake = FakeTwilio(SID, TOKEN)
    server = _serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


def _recording_callback(url: str) -> dict[str, str]:
    return {
        "AccountSid": SID,
        "CallSid": CALL_SID,
        "RecordingSid": RECORDING_SID,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "6",
        "RecordingChannels": "1",
        "RecordingSource": "DialVerb",
    }


def _announce(client, world, url: str) -> None:
    done = _post(client, world.practice_id, _completed(CALL_SID))
    assert done.status_code == 200, done.text
    queued = _post(client, world.practice_id, _recording_callback(url))
    assert queued.status_code == 200, queued.text


def _run(client, base: str):
    fetcher = TwilioFetcher(client.app.state.calls, base)
    return client.portal.call(fetcher.run)


def _fetch_row(target, practice_id):
    with admin_connection(target) as conn:
        return conn.execute(
            "select status, attempts, last_error, deleted_at_twilio "
            "from phi.twilio_recording_fetches where practice_id = %s",
            (practice_id,),
        ).fetchone()


def _stored(target, practice_id) -> int:
    with admin_connection(target) as conn:
        (count,) = conn.execute(
            "select count(*) from phi.call_media where practice_id = %s "
            "and kind = 'recording'",
            (practice_id,),
        ).fetchone()
    return int(count)


def _twilio_events(target, practice_id):
    with admin_connection(target) as conn:
        return conn.execute(
            "select action, outcome from audit.events where practice_id = %s "
            "and resource_type = 'twilio_recording' order by occurred_at",
            (practice_id,),
        ).fetchall()


def _call_settings(world, **change):
    body = {
        "recording_retention_days": 365,
        "transcript_retention_days": 365,
        "twilio_account_sid": SID,
        **change,
    }
    saved = world.api("owner", "PUT", "/api/v1/practice/call-settings", json=body)
    assert saved.status_code == 200, saved.text
    return saved.json()


def test_fetched_recording_is_stored_encrypted_linked_and_deleted_at_twilio(
    client, target, twilio, elsewhere
):
    world = build_world(client, target)
    _configure(world, target)
    audio = make_wav(6.0)
    twilio.recordings[RECORDING_SID] = audio
    # The callback names another host; the fetch must not go there.
    elsewhere.recordings[RECORDING_SID] = audio
    _announce(
        client,
        world,
        f"{elsewhere.base}/2010-04-01/Accounts/{SID}/Recordings/{RECORDING_SID}",
    )

    report = _run(client, twilio.base)
    assert (report.stored, report.deleted_at_twilio) == (1, 1)
    assert elsewhere.requests == []
    prefix = f"/2010-04-01/Accounts/{SID}/Recordings/{RECORDING_SID}"
    assert twilio.requests == [("GET", prefix + ".wav"), ("DELETE", prefix + ".json")]
    assert RECORDING_SID not in twilio.recordings

    status, attempts, error, deleted = _fetch_row(target, world.practice_id)
    assert (status, attempts, error) == ("done", 0, None)
    assert deleted is not None
    assert _twilio_events(target, world.practice_id) == [
        ("api_call", "success"),
        ("delete", "success"),
    ]

    # Linked to the call the status callback recorded, and encrypted at rest.
    with admin_connection(target) as conn:
        (call_id,) = conn.execute(
            "select c.id from phi.calls c join phi.call_media m on m.call_id = c.id "
            "where c.practice_id = %s and m.kind = 'recording'",
            (world.practice_id,),
        ).fetchone()
    played = world.api("manager", "GET", f"/api/v1/calls/{call_id}/recording")
    assert played.status_code == 200
    assert played.content == audio
    stored_files = blob_files(
        client.app.state.services.settings.data_dir, world.practice_id
    )
    assert stored_files
    assert all(audio[44:4000] not in p.read_bytes() for p in stored_files)

    # Nothing left to do: a second run asks Twilio nothing.
    again = _run(client, twilio.base)
    assert again.stored == 0
    assert len(twilio.requests) == 2


def test_recordings_opted_out_are_neither_requested_nor_stored(client, target, twilio):
    world = build_world(client, target)
    _configure(world, target)
    _call_settings(world, recording_retention_days=0)
    twilio.recordings[RECORDING_SID] = make_wav(2.0)
    _announce(client, world, "https://api.twilio.com/anything")

    report = _run(client, twilio.base)
    assert report.not_stored == 1
    assert twilio.requests == []
    assert _stored(target, world.practice_id) == 0
    assert _fetch_row(target, world.practice_id)[0] == "opted_out"
    assert RECORDING_SID in twilio.recordings


def test_recording_twilio_does_not_have_is_given_up(client, target, twilio):
    world = build_world(client, target)
    _configure(world, target)
    _announce(client, world, "https://api.twilio.com/x")

    report = _run(client, twilio.base)
    assert report.gone == 1
    status, _, error, _ = _fetch_row(target, world.practice_id)
    assert (status, error) == ("gone", "twilio_recording_not_found")
    assert _twilio_events(target, world.practice_id) == [("api_call", "not_found")]
    assert _run(client, twilio.base).gone == 0
    assert len(twilio.requests) == 1


def test_server_error_is_retried_with_backoff_then_succeeds(
    client, target, clock, twilio
):
    world = build_world(client, target)
    _configure(world, target)
    twilio.recordings[RECORDING_SID] = make_wav(2.0)
    twilio.scripted = [500]
    _announce(client, world, "https://api.twilio.com/x")

    first = _run(client, twilio.base)
    assert first.retrying == 1
    status, attempts, error, _ = _fetch_row(target, world.practice_id)
    assert (status, attempts, error) == ("pending", 1, "twilio_unavailable")
    # Not due again before its backoff ends.
    assert _run(client, twilio.base).retrying == 0
    assert len(twilio.requests) == 1

    clock.advance(minutes=2)
    second = _run(client, twilio.base)
    assert (second.stored, second.deleted_at_twilio) == (1, 1)
    assert _stored(target, world.practice_id) == 1
    assert _fetch_row(target, world.practice_id)[0] == "done"


def test_rejected_credentials_stop_fetching_and_are_shown_to_owners(
    client, target, twilio
):
    world = build_world(client, target)
    _configure(world, target)
    twilio.recordings[RECORDING_SID] = make_wav(2.0)
    twilio.auth_token = "f" * 32
    _announce(client, world, "https://api.twilio.com/x")

    report = _run(client, twilio.base)
    assert report.credentials_rejected == 1
    assert _fetch_row(target, world.practice_id)[0] == "credentials_rejected"
    assert _twilio_events(target, world.practice_id) == [("api_call", "denied")]
    owner_view = world.api("owner", "GET", "/api/v1/practice/call-settings")
    assert owner_view.json()["twilio_credentials_rejected"] is True
    manager_view = world.api("manager", "GET", "/api/v1/practice/call-settings")
    assert manager_view.json()["twilio_credentials_rejected"] is False
    page = sign_in_console(world, "owner").get("/settings/calls")
    assert 'data-testid="twilio-credentials-rejected"' in page.text

    # Stopped: no further request until the owner saves credentials again.
    assert _run(client, twilio.base).credentials_rejected == 0
    assert len(twilio.requests) == 1
    twilio.auth_token = "a" * 32
    _call_settings(world, twilio_auth_token="a" * 32)
    assert (
        world.api("owner", "GET", "/api/v1/practice/call-settings").json()[
            "twilio_credentials_rejected"
        ]
        is False
    )
    retried = _run(client, twilio.base)
    assert retried.stored == 1
    assert _fetch_row(target, world.practice_id)[0] == "done"


def test_card_number_without_timings_keeps_the_recording_out(client, target, twilio):
    world = build_world(client, target)
    _configure(world, target)
    twilio.recordings[RECORDING_SID] = make_wav(2.0)
    _announce(client, world, "https://api.twilio.com/x")
    transcription = {
        "AccountSid": SID,
        "CallSid": CALL_SID,
        "TranscriptionStatus": "completed",
        "TranscriptionText": f"my card is {CARD}",
    }
    assert _post(client, world.practice_id, transcription).status_code == 200

    report = _run(client, twilio.base)
    assert report.refused == 1
    assert _stored(target, world.practice_id) == 0
    status, _, error, deleted = _fetch_row(target, world.practice_id)
    assert (status, error, deleted) == ("refused", "recording_not_silenceable", None)
    # Not deleted at Twilio: it is the only copy.
    assert RECORDING_SID in twilio.recordings


def test_bad_signature_on_a_recording_callback_queues_nothing(client, target, twilio):
    world = build_world(client, target)
    _configure(world, target)
    forged = _post(
        client,
        world.practice_id,
        _recording_callback(f"{twilio.base}/x"),
        token="e" * 32,
    )
    assert forged.status_code == 403
    with admin_connection(target) as conn:
        (queued,) = conn.execute(
            "select count(*) from phi.twilio_recording_fetches"
        ).fetchone()
    assert queued == 0
    assert _run(client, twilio.base).stored == 0
    assert twilio.requests == []


def test_api_base_must_be_https_except_on_this_machine(tmp_path):
    assert api_base(Settings(data_dir=tmp_path)) == "https://api.twilio.com"
    local = Settings(data_dir=tmp_path, twilio_api_base="http://localhost:8080/")
    assert api_base(local) == "http://localhost:8080"
    for refused in (
        "http://api.twilio.com",
        "http://10.0.0.5",
        "https://api.twilio.com/2010-04-01",
        "https://user:pw@api.twilio.com",
        "ftp://localhost",
    ):
        with pytest.raises(ConfigError):
            api_base(Settings(data_dir=tmp_path, twilio_api_base=refused))
