"""API reads resolve the caller's session inside the read's own transaction
(`app.session_claims`). The session rules must be exactly those of every other
route: an ended, unfinished or practice-less session reads nothing, and what the
request states (purpose, reason) never decides who the caller is."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import admin_connection
from tests.functional.identity.helpers import bearer, enrol_totp, sign_in
from tests.support.factories import sign_up
from tests.support.world import build_world


def _events(target: Any, practice_id: str, request_id: str) -> list[tuple[Any, ...]]:
    with admin_connection(target) as conn:
        return conn.execute(
            "select actor_id, actor_role, action, purpose_of_use, reason, outcome "
            "from audit.events where practice_id = %s and request_id = %s",
            (practice_id, request_id),
        ).fetchall()


def test_a_read_is_audited_as_the_session_holder_with_the_stated_purpose(
    client, target
):
    world = build_world(client, target)
    visit = world.appointment(world.patient()["id"])
    answer = client.get(
        f"/api/v1/appointments/{visit['id']}",
        headers={
            **world.headers["biller"],
            "X-Purpose-Of-Use": "HPAYMT",
            "X-Access-Reason": "claim   follow-up",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["reason"] == "Annual check-up"
    events = _events(target, world.practice_id, answer.headers["x-request-id"])
    assert events == [
        (
            uuid.UUID(world.user_ids["biller"]),
            "biller",
            "view",
            "HPAYMT",
            "claim follow-up",
            "success",
        )
    ]


def test_ended_and_missing_sessions_read_nothing(client, target, clock):
    world = build_world(client, target)
    visit = world.appointment(world.patient()["id"])
    path = f"/api/v1/appointments/{visit['id']}"

    assert client.get(path).json()["code"] == "not_authenticated"
    for junk in ("x", "y" * 201):
        assert client.get(path, headers=bearer(junk)).status_code == 401

    # Signed out: the same token is refused by the read itself.
    headers = world.headers["front_desk"]
    assert client.get(path, headers=headers).status_code == 200
    assert client.delete("/api/v1/sessions/current", headers=headers).status_code in (
        200,
        204,
    )
    ended = client.get(path, headers=headers)
    assert ended.status_code == 401
    assert ended.json()["code"] == "session_expired"
    assert visit["id"] not in ended.text

    # Idle past the practice's timeout (15 minutes by default).
    clock.advance(minutes=16)
    idle = client.get(path, headers=world.headers["manager"])
    assert idle.json()["code"] == "session_expired"
    # And it stays ended, even though the refusal rolled the read back.
    clock.advance(seconds=1)
    again = client.get("/api/v1/me", headers=world.headers["manager"])
    assert again.status_code == 401


def test_an_unfinished_sign_in_reads_nothing(client, clock):
    owner = sign_up(client)
    enrol_totp(client, owner["auth"], clock)

    pending = sign_in(client, owner["input"]["email"])
    assert pending.status_code == 201, pending.text
    assert pending.json()["state"] == "mfa_pending"
    token = pending.json()["token"]
    refused = client.get(f"/api/v1/appointments/{uuid.uuid4()}", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "mfa_required"


def test_stated_purpose_and_reason_are_checked_before_anything_is_read(client, target):
    world = build_world(client, target)
    visit = world.appointment(world.patient()["id"])
    path = f"/api/v1/appointments/{visit['id']}"
    bad_purpose = client.get(
        path, headers={**world.headers["owner"], "X-Purpose-Of-Use": "CURIOSITY"}
    )
    assert bad_purpose.status_code == 422
    card = "4242 4242 4242 4242"
    bad_reason = client.get(
        path, headers={**world.headers["owner"], "X-Access-Reason": f"paid {card}"}
    )
    assert bad_reason.status_code == 422
    assert card not in bad_reason.text
    for answer in (bad_purpose, bad_reason):
        rid = answer.headers["x-request-id"]
        assert _events(target, world.practice_id, rid) == []


def test_a_role_the_matrix_refuses_is_refused_and_recorded_by_the_database(
    client, target
):
    world = build_world(client, target)
    patient = world.patient()
    client.put(
        f"/api/v1/patients/{patient['id']}/coverage",
        json={"payer": "Synthetic Mutual", "member_id": "SYN-0001"},
        headers=world.headers["front_desk"],
    )
    refused = client.get(
        f"/api/v1/patients/{patient['id']}/coverage",
        headers=world.headers["provider"],
    )
    assert refused.status_code == 403
    assert "SYN-0001" not in refused.text
    events = _events(target, world.practice_id, refused.headers["x-request-id"])
    assert [(e[1], e[5]) for e in events] == [("provider", "denied")]


def test_another_practices_record_is_not_found_for_every_read_route(client, target):
    ours, theirs = build_world(client, target), build_world(client, target)
    patient = theirs.patient()
    visit = theirs.appointment(patient["id"])
    call = theirs.make_call(target, patient_id=patient["id"])
    for path in (
        f"/api/v1/patients/{patient['id']}",
        f"/api/v1/appointments/{visit['id']}",
        f"/api/v1/calls/{call}",
    ):
        answer = client.get(path, headers=ours.headers["owner"])
        assert answer.status_code == 404, path
        events = _events(target, ours.practice_id, answer.headers["x-request-id"])
        assert [e[5] for e in events] == ["not_found"], path
    listed = client.get(
        f"/api/v1/patients/{patient['id']}/coverage", headers=ours.headers["owner"]
    )
    assert listed.status_code == 200
    assert listed.json() == []
