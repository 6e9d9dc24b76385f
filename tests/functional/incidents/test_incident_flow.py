"""From alert to notice: an owner reads an alert's evidence, escalates it (once,
however often it is asked), the affected patients come from the audit log, the
risk assessment is recorded, and the 164.410 notice reaches the practice's owners
and managers through the outbox with its delivery time."""

from __future__ import annotations

import datetime as dt

from tests.conftest import admin_connection
from tests.functional.incidents.helpers import (
    at,
    events_of,
    outbox,
    raise_suspicion,
    suspect_touches,
    with_db,
)
from tests.support.console import post_form, sign_in_console
from tests.support.world import build_world

from perpetua.mail.outbox import deliver_due
from perpetua.mail.transport import transport_for

ASSESSMENT = {
    "nature_extent": "Names and dates of birth of three patients; no clinical data.",
    "unauthorized_person": "A front desk member with no visit to explain the access.",
    "acquired_or_viewed": "Each record was opened and displayed once.",
    "mitigation": "Access reviewed with the member; their role was narrowed.",
    "conclusion": "breach",
    "phi_kinds": ["demographics", "contact"],
    "description": "A member opened records of patients with no appointment.",
    "contact": "Privacy officer, +1 555 0100",
}


def test_alert_becomes_incident_with_clocks_assessment_and_notice(
    client, target, clock, settings
):
    world = build_world(client, target)
    touched = suspect_touches(world)
    alert_id = raise_suspicion(target, world, clock)
    evidence_ids = {
        str(e[0])
        for e in events_of(target, world.practice_id, world.user_ids["front_desk"])
    }

    future = world.api(
        "owner",
        "POST",
        "/api/v1/incidents",
        json={"discovered_at": (clock.now() + dt.timedelta(hours=1)).isoformat()},
    )
    assert future.status_code == 422
    assert future.json()["code"] == "incident_input_invalid"
    card = world.api(
        "owner",
        "POST",
        "/api/v1/incidents",
        json={
            "discovered_at": clock.now().isoformat(),
            "description": "Card 4111 1111 1111 1111 was read aloud",
        },
    )
    assert card.status_code == 422
    assert "4111" not in card.text
    assert world.api("owner", "GET", "/api/v1/incidents").json() == []

    listed = world.api("owner", "GET", "/api/v1/alerts").json()
    assert [a["id"] for a in listed] == [str(alert_id)]
    assert listed[0]["severity"] == "high"
    assert listed[0]["patient_count"] == 3

    detail = world.api("manager", "GET", f"/api/v1/alerts/{alert_id}").json()
    assert {e["id"] for e in detail["evidence"]} == evidence_ids
    assert {e["action"] for e in detail["evidence"]} >= {"view", "create"}

    escalated = world.api("owner", "POST", f"/api/v1/alerts/{alert_id}/escalate")
    assert escalated.status_code == 201, escalated.text
    incident = escalated.json()
    again = world.api("manager", "POST", f"/api/v1/alerts/{alert_id}/escalate").json()
    assert again["id"] == incident["id"]
    assert len(world.api("owner", "GET", "/api/v1/incidents").json()) == 1
    alert_after = world.api("owner", "GET", f"/api/v1/alerts/{alert_id}").json()
    assert alert_after["status"] == "escalated"
    assert alert_after["incident_id"] == incident["id"]

    # Discovery is when Perpetua's detector raised the alert; the practice is
    # owed its notice 24 hours later.
    assert at(incident["discovered_at"]) == at(listed[0]["detected_at"])
    clocks = {c["clock"]: c for c in incident["clocks"]}
    assert at(clocks["practice_notice"]["due_at"]) == at(
        incident["discovered_at"]
    ) + dt.timedelta(hours=24)
    assert clocks["practice_notice"]["state"] == "running"
    assert clocks["hhs_annual_log"]["applies"]
    assert not clocks["hhs"]["applies"]
    assert sorted(incident["affected_patient_ids"]) == sorted(touched)

    incident_id = incident["id"]
    recomputed = world.api(
        "owner", "POST", f"/api/v1/incidents/{incident_id}/affected", json={}
    ).json()
    assert sorted(recomputed["affected_patient_ids"]) == sorted(touched)

    incomplete = world.api(
        "owner",
        "PUT",
        f"/api/v1/incidents/{incident_id}/assessment",
        json={**ASSESSMENT, "acquired_or_viewed": "  "},
    )
    assert incomplete.status_code == 422
    assert incomplete.json()["code"] == "assessment_incomplete"
    assessed = world.api(
        "manager", "PUT", f"/api/v1/incidents/{incident_id}/assessment", json=ASSESSMENT
    )
    assert assessed.status_code == 200, assessed.text
    assert assessed.json()["conclusion"] == "breach"
    assert assessed.json()["phi_kinds"] == ["contact", "demographics"]

    sent = world.api("owner", "POST", f"/api/v1/incidents/{incident_id}/notice")
    assert sent.status_code == 201, sent.text
    assert sent.json()["recipients"] == 2
    assert sent.json()["affected_count"] == 3
    queued = outbox(target, world.practice_id, "incident_notice")
    assert len(queued) == 2
    body = queued[0][3]
    for needed in (
        "45 CFR 164.410",
        f"Incident reference: {incident_id}",
        "What happened: A member opened records",
        "Date of discovery: ",
        "Kinds of PHI involved: phone numbers, names, dates of birth",
        "Individuals affected, as far as known: 3",
        *touched,
        "Mitigation: Access reviewed",
        "Contact: Privacy officer",
    ):
        assert needed in body
    assert "Testpatient" not in body  # names stay out of email

    shown = world.api("owner", "GET", f"/api/v1/incidents/{incident_id}").json()
    assert shown["notice_queued_at"] is not None
    assert shown["notice_delivered_at"] is None
    clock.advance(minutes=5)
    report = with_db(
        target,
        lambda db: deliver_due(
            db, clock, transport_for(None, settings.data_dir / "incident-mail")
        ),
    )
    assert report.failed == 0
    assert [m[4] for m in outbox(target, world.practice_id, "incident_notice")] == [
        "sent",
        "sent",
    ]
    delivered = world.api("owner", "GET", f"/api/v1/incidents/{incident_id}").json()
    assert at(delivered["notice_delivered_at"]) == clock.now()
    notice_clock = next(
        c for c in delivered["clocks"] if c["clock"] == "practice_notice"
    )
    assert notice_clock["state"] == "met"
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/incidents/{incident_id}/assessment" in spec["paths"]

    # Names: only through the records service's audited read.
    names = world.api("manager", "GET", f"/api/v1/incidents/{incident_id}/patients")
    assert names.status_code == 200, names.text
    assert sorted(p["id"] for p in names.json()) == sorted(touched)
    assert all(p["name"].startswith("Testpatient") for p in names.json())
    with admin_connection(target) as conn:
        recorded = conn.execute(
            "select purpose_of_use, reason, patient_ids from audit.events "
            "where actor_id = %s and resource_type = 'patient' and action = 'view'",
            (world.user_ids["manager"],),
        ).fetchall()
    assert [(r[0], r[1]) for r in recorded] == [
        ("HOPERAT", "Breach incident review: affected individuals")
    ]
    assert sorted(str(p) for p in recorded[0][2]) == sorted(touched)


def test_console_escalates_and_shows_the_24_hour_clock(client, target, clock):
    world = build_world(client, target)
    suspect_touches(world, count=1)
    alert_id = raise_suspicion(target, world, clock)
    console = sign_in_console(world, "owner")

    listed = console.get("/alerts")
    assert listed.status_code == 200
    assert "unexplained access" in listed.text
    detail = console.get(f"/alerts/{alert_id}")
    evidence = events_of(target, world.practice_id, world.user_ids["front_desk"])
    assert detail.text.count('data-testid="evidence-row"') == len(evidence)
    for event in evidence:
        assert str(event[0]) in detail.text

    escalated = post_form(
        console, f"/alerts/{alert_id}/escalate", {}, follow_redirects=False
    )
    assert escalated.status_code == 303
    page = console.get(escalated.headers["location"])
    assert 'data-testid="clock-practice_notice"' in page.text
    assert "24 hours" in page.text
    assert "1 day 0 h left" in page.text  # the frozen clock has not moved

    sent = post_form(
        console,
        escalated.headers["location"] + "/notice",
        {},
        follow_redirects=True,
    )
    assert "The notice is queued" in sent.text
    assert 'data-testid="notice-queued"' in sent.text

    # A dismissed alert keeps its decision: it cannot be escalated afterwards.
    second = raise_suspicion(target, world, clock, detector="volume_spike")
    dismissed = post_form(
        console, f"/alerts/{second}/triage", {"step": "dismiss"}, follow_redirects=True
    )
    assert 'data-testid="alert-status">dismissed' in dismissed.text
    refused = world.api("owner", "POST", f"/api/v1/alerts/{second}/escalate")
    assert refused.status_code == 409
    assert refused.json()["code"] == "alert_closed"
    assert len(world.api("owner", "GET", "/api/v1/incidents").json()) == 1
