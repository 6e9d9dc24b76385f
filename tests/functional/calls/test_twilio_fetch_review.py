"""Twilio recordings left to the practice: owners and managers see, in the console
and the API, the fetches that were given up, stopped by rejected credentials or
pending for over an hour, each in plain words; every read is an audit event;
other roles are refused and other practices see nothing.

Rows are queued by the real webhook and worked by the real fetcher against the
local Twilio stand-in of test_twilio_fetch.py, or written with the database's
superuser where a state takes hours or many attempts to reach. All ids and
numbers are synthetic."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tests.conftest import admin_connection
from tests.functional.calls.test_twilio_fetch import (
    CALL_SID,
    RECORDING_SID,
    FakeTwilio,
    _announce,
    _recording_callback,
    _run,
    _serve,
)
from tests.functional.calls.test_twilio_webhook import SID, TOKEN, _configure, _post
from tests.support.console import sign_in_console
from tests.support.world import as_owner_role, build_world, system_claims

from perpetua.calls.webhook import call_id_for

CALLER = "+15550100999"
FIELDS = {
    "id",
    "call_id",
    "call_recorded",
    "recording_sid",
    "status",
    "summary",
    "explanation",
    "recording_stored",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
}


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(SID, TOKEN)
    server = _serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


def _sid() -> str:
    return "RE" + uuid.uuid4().hex


def _queue(
    target,
    practice_id: str,
    call_id: str,
    status: str,
    *,
    error: str | None = None,
    attempts: int = 0,
    created_at: dt.datetime,
) -> str:
    """One recording queued as the webhook queues it, then put in a state the
    worker reaches only after hours or many attempts."""
    sid = _sid()
    with as_owner_role(target, system_claims(practice_id)) as conn:
        conn.execute(
            "select phi_api.queue_twilio_recording(%s, %s, 1, 6, now())",
            (call_id, sid),
        )
    with admin_connection(target) as conn:
        conn.execute(
            "update phi.twilio_recording_fetches set status = %s, attempts = %s, "
            "last_error = %s, created_at = %s, updated_at = %s "
            "where recording_sid = %s",
            (status, attempts, error, created_at, created_at, sid),
        )
    return sid


def _review_events(target, practice_id):
    with admin_connection(target) as conn:
        return conn.execute(
            "select actor_role, outcome, resource_ids, patient_ids, row_count "
            "from audit.events where practice_id = %s and action = 'view' "
            "and resource_type = 'twilio_recording' order by occurred_at",
            (practice_id,),
        ).fetchall()


def _world_with_fetches(client, target, clock):
    """A practice with one fetch in every state, and what each should show."""
    world = build_world(client, target)
    patient = world.patient()
    known = world.make_call(target, patient["id"])
    unknown = str(uuid.uuid4())
    long_ago = clock.now() - dt.timedelta(hours=3)
    just_now = clock.now() - dt.timedelta(minutes=5)
    p = world.practice_id
    shown = {
        _queue(
            target, p, known, "refused", error="recording_not_silenceable",
            attempts=0, created_at=long_ago,
        ): ("refused", known, True),
        _queue(
            target, p, known, "gone", error="twilio_recording_not_found",
            created_at=long_ago,
        ): ("gone", known, True),
        _queue(
            target, p, unknown, "failed", error="call_not_recorded", attempts=8,
            created_at=long_ago,
        ): ("failed", unknown, False),
        _queue(
            target, p, known, "credentials_rejected",
            error="twilio_credentials_rejected", created_at=long_ago,
        ): ("credentials_rejected", known, True),
        _queue(
            target, p, unknown, "pending", error="call_not_recorded", attempts=3,
            created_at=long_ago,
        ): ("pending", unknown, False),
    }  # fmt: skip
    hidden = {
        _queue(target, p, unknown, "pending", created_at=just_now),
        _queue(target, p, known, "done", created_at=long_ago),
        _queue(
            target, p, known, "opted_out", error="not_retained", created_at=long_ago
        ),
    }
    return world, patient, known, shown, hidden


def test_owners_and_managers_see_fetches_left_to_the_practice_in_plain_words(
    client, target, clock
):
    world, patient, _, shown, hidden = _world_with_fetches(client, target, clock)

    for role in ("owner", "manager"):
        answer = world.api(role, "GET", "/api/v1/calls/twilio-fetches")
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        by_sid = {r["recording_sid"]: r for r in rows}
        assert set(by_sid) == set(shown)
        assert not set(by_sid) & hidden
        for sid, (status, call_id, recorded) in shown.items():
            row = by_sid[sid]
            assert set(row) == FIELDS
            assert (row["status"], row["call_id"], row["call_recorded"]) == (
                status,
                call_id,
                recorded,
            )
            assert row["summary"]
            assert row["explanation"]
            assert row["recording_stored"] is False
        # Nothing about the patient or the caller: the call id is all there is.
        assert patient["id"] not in answer.text
        assert patient["phone"] not in answer.text

    words = {r["status"]: r for r in rows}
    assert "card number" in words["refused"]["summary"]
    assert "still in your Twilio account" in words["refused"]["explanation"]
    assert words["failed"]["summary"] == "Not stored: Twilio never reported the call"
    assert "8 attempts" in words["failed"]["explanation"]
    assert words["failed"]["last_error"] == "call_not_recorded"
    assert words["pending"]["summary"] == "Waiting for the call"
    assert "Retention settings" in words["credentials_rejected"]["explanation"]

    # Each read is recorded first, naming the calls and the patient they concern.
    events = _review_events(target, world.practice_id)
    assert [(e[0], e[1], e[4]) for e in events] == [
        ("owner", "success", len(shown)),
        ("manager", "success", len(shown)),
    ]
    expected_calls = {uuid.UUID(c) for _, c, _ in shown.values()}
    assert set(events[0][2]) == expected_calls
    assert events[0][3] == [uuid.UUID(patient["id"])]


def test_other_roles_are_refused_and_the_refusal_recorded(client, target, clock):
    world, _, _, shown, _ = _world_with_fetches(client, target, clock)

    for role in ("front_desk", "biller", "provider"):
        refused = world.api(role, "GET", "/api/v1/calls/twilio-fetches")
        assert refused.status_code == 403, (role, refused.text)
        assert refused.json()["code"] == "forbidden"
        assert not any(sid in refused.text for sid in shown)

    events = _review_events(target, world.practice_id)
    assert sorted((e[0], e[1], e[4]) for e in events) == [
        ("biller", "denied", 0),
        ("front_desk", "denied", 0),
        ("provider", "denied", 0),
    ]


def _read_as(target, practice_id: str, role: str):
    """phi_api.twilio_fetches_for_review as the service calls it, with `role`'s
    claims: the database's own answer, without the service's early check."""
    claims = {
        "actor_kind": "user",
        "sub": str(uuid.uuid4()),
        "request_id": "test-review",
        "practice_id": practice_id,
        "practice_role": role,
    }
    with psycopg.connect(target.conninfo("service")) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
        )
        rows = conn.execute(
            "select recording_sid from phi_api.twilio_fetches_for_review("
            "now(), interval '1 hour')"
        ).fetchall()
        (outcome,) = conn.execute(
            "select current_setting('perpetua.outcome', true)"
        ).fetchone()
    return rows, outcome


def test_the_database_itself_refuses_other_roles_and_other_practices(
    client, target, clock
):
    world, _, _, shown, _ = _world_with_fetches(client, target, clock)
    other = build_world(client, target)

    rows, outcome = _read_as(target, world.practice_id, "owner")
    assert {r[0] for r in rows} == set(shown)
    rows, outcome = _read_as(target, world.practice_id, "front_desk")
    assert (rows, outcome) == ([], "denied")
    rows, outcome = _read_as(target, other.practice_id, "owner")
    assert rows == []
    assert outcome != "denied"


def test_another_practice_sees_none_of_them(client, target, clock):
    _world_with_fetches(client, target, clock)
    other = build_world(client, target)

    for role in ("owner", "manager"):
        answer = other.api(role, "GET", "/api/v1/calls/twilio-fetches")
        assert answer.status_code == 200
        assert answer.json() == []
    page = sign_in_console(other, "owner").get("/calls/twilio-fetches")
    assert page.status_code == 200
    assert 'data-testid="twilio-fetches-none"' in page.text


def test_console_shows_the_page_to_owners_and_not_to_front_desk(client, target, clock):
    world, _, known, shown, _ = _world_with_fetches(client, target, clock)

    console = sign_in_console(world, "owner")
    listing = console.get("/calls")
    assert 'data-testid="twilio-fetches-link"' in listing.text
    page = console.get("/calls/twilio-fetches")
    assert page.status_code == 200
    assert page.text.count('data-testid="twilio-fetch-row"') == len(shown)
    for sid in shown:
        assert sid in page.text
    assert f'href="/calls/{known}"' in page.text
    assert "Not stored: a card number could not be silenced" in page.text
    assert "recording_not_silenceable" in page.text

    console = sign_in_console(world, "front_desk")
    listing = console.get("/calls")
    assert listing.status_code == 200
    assert 'data-testid="twilio-fetches-link"' not in listing.text
    refused = console.get("/calls/twilio-fetches")
    assert refused.status_code == 403
    assert 'data-testid="twilio-fetches"' not in refused.text
    assert not any(sid in refused.text for sid in shown)
    assert "Not available to your role" in refused.text

    # The owner's page view is on record; the front desk's attempt as denied.
    events = _review_events(target, world.practice_id)
    assert [(e[0], e[1]) for e in events] == [
        ("owner", "success"),
        ("front_desk", "denied"),
    ]


def test_fetches_worked_by_the_real_fetcher_are_shown(client, target, clock, twilio):
    world = build_world(client, target)
    _configure(world, target)

    # Twilio has no such recording: given up at once.
    _announce(client, world, "https://api.twilio.com/x")
    # A second recording whose call Twilio never reports.
    lonely_sid = "RE" + "b" * 32
    lonely = _recording_callback("https://api.twilio.com/y")
    lonely.update(CallSid="CA" + "6" * 32, RecordingSid=lonely_sid)
    assert _post(client, world.practice_id, lonely).status_code == 200

    report = _run(client, twilio.base)
    assert (report.gone, report.retrying) == (1, 1)

    # Within the hour, the waiting one is not yet worth anyone's time.
    first = world.api("owner", "GET", "/api/v1/calls/twilio-fetches").json()
    assert [(r["recording_sid"], r["status"]) for r in first] == [
        (RECORDING_SID, "gone")
    ]
    gone = first[0]
    assert gone["call_id"] == str(call_id_for(uuid.UUID(world.practice_id), CALL_SID))
    assert gone["call_recorded"] is True
    assert gone["last_error"] == "twilio_recording_not_found"
    assert CALLER not in json.dumps(first)

    # An hour later, it is.
    with admin_connection(target) as conn:
        conn.execute(
            "update phi.twilio_recording_fetches "
            "set created_at = created_at - interval '2 hours' "
            "where recording_sid = %s",
            (lonely_sid,),
        )
    later = world.api("manager", "GET", "/api/v1/calls/twilio-fetches").json()
    waiting = next(r for r in later if r["recording_sid"] == lonely_sid)
    assert (waiting["status"], waiting["call_recorded"], waiting["attempts"]) == (
        "pending",
        False,
        1,
    )
    assert waiting["summary"] == "Waiting for the call"
