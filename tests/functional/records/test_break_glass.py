"""Break-glass: a member opens one patient's records outside their role, with a
reason, for a limited time; every access is recorded as BTG and owners are told."""

from __future__ import annotations

from tests.conftest import admin_connection
from tests.support.world import build_world

BTG = {"X-Purpose-Of-Use": "BTG"}


def test_provider_opens_emergency_access_to_one_patient(client, target, clock):
    world = build_world(client, target)
    other = world.patient()
    world.appointment(other["id"], world.other_provider_id)
    unrelated = world.patient()
    path = f"/api/v1/patients/{other['id']}"

    assert world.api("provider", "GET", path).status_code == 404

    too_short = world.api(
        "provider", "POST", f"{path}/break-glass", json={"reason": "urgent"}
    )
    assert too_short.status_code == 422
    opened = world.api(
        "provider",
        "POST",
        f"{path}/break-glass",
        json={"reason": "Patient collapsed in the waiting room", "minutes": 30},
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["purpose_of_use"] == "BTG"

    # Only when the request declares the emergency purpose, and only this patient.
    assert world.api("provider", "GET", path).status_code == 404
    seen = world.api("provider", "GET", path, headers=BTG)
    assert seen.status_code == 200
    assert seen.json()["name"] == other["name"]
    elsewhere = world.api(
        "provider", "GET", f"/api/v1/patients/{unrelated['id']}", headers=BTG
    )
    assert elsewhere.status_code == 404

    with admin_connection(target) as conn:
        purpose = conn.execute(
            "select purpose_of_use, action from audit.events where request_id = %s",
            (seen.headers["x-request-id"],),
        ).fetchall()
        grant = conn.execute(
            "select action, purpose_of_use from audit.events "
            "where resource_type = 'break_glass_grant' and %s = any (patient_ids)",
            (other["id"],),
        ).fetchall()
        notices = conn.execute(
            "select o.to_address, o.body_text from app.mail_outbox o "
            "where o.practice_id = %s and o.kind = 'break_glass'",
            (world.practice_id,),
        ).fetchall()
        owner_email = conn.execute(
            "select email from app.users where id = %s", (world.user_ids["owner"],)
        ).fetchone()
    assert purpose == [("BTG", "view")]
    assert grant == [("break_glass", "TREAT")]
    assert [n[0] for n in notices] == [owner_email[0]]
    assert other["name"] not in notices[0][1]
    assert "collapsed" not in notices[0][1]


def test_break_glass_needs_a_reason_and_a_user(client, target):
    world = build_world(client, target)
    patient = world.patient()
    response = world.api(
        "provider",
        "POST",
        f"/api/v1/patients/{patient['id']}/break-glass",
        json={"reason": "card 4242 4242 4242 4242 on file", "minutes": 30},
    )
    assert response.status_code == 422
    assert "4242" not in response.text
