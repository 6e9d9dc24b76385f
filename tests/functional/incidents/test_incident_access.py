"""Who may touch alerts and incidents: the practice's owners and managers only;
another practice sees nothing and changes nothing; other roles are refused; the
database refuses too when the service's checks are bypassed; Perpetua's staff
work across practices without ever receiving PHI."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from tests.functional.incidents.helpers import (
    outbox,
    raise_suspicion,
    staff_headers,
    suspect_touches,
)
from tests.support.console import CSRF
from tests.support.world import build_world

from perpetua.web.context import SESSION_COOKIE

ROLES_REFUSED = ("front_desk", "biller", "provider")


@pytest.fixture
def escalated(client, target, clock):
    world = build_world(client, target)
    touched = suspect_touches(world, count=2)
    alert_id = raise_suspicion(target, world, clock)
    incident = world.api("owner", "POST", f"/api/v1/alerts/{alert_id}/escalate").json()
    return world, alert_id, incident["id"], touched


def test_other_roles_are_refused_by_the_service_and_the_database(target, escalated):
    world, alert_id, incident_id, _touched = escalated
    for role in ROLES_REFUSED:
        for method, path in (
            ("GET", "/api/v1/alerts"),
            ("GET", f"/api/v1/alerts/{alert_id}"),
            ("POST", f"/api/v1/alerts/{alert_id}/dismiss"),
            ("GET", "/api/v1/incidents"),
            ("GET", f"/api/v1/incidents/{incident_id}"),
            ("GET", f"/api/v1/incidents/{incident_id}/patients"),
            ("POST", f"/api/v1/incidents/{incident_id}/notice"),
            ("GET", "/api/v1/staff/incidents"),
        ):
            answer = world.api(role, method, path)
            assert answer.status_code == 403, (role, path, answer.text)
            assert answer.json()["code"] in ("incidents_for_managers", "staff_only")
    still = world.api("owner", "GET", f"/api/v1/alerts/{alert_id}").json()
    assert still["status"] == "escalated"
    _database_refuses_other_roles_and_staff(target, world, incident_id)


def test_another_practice_sees_and_changes_nothing(client, target, escalated):
    world, alert_id, incident_id, _touched = escalated
    other = build_world(client, target, baa=False)
    for method, path in (
        ("GET", f"/api/v1/alerts/{alert_id}"),
        ("POST", f"/api/v1/alerts/{alert_id}/acknowledge"),
        ("POST", f"/api/v1/alerts/{alert_id}/escalate"),
        ("GET", f"/api/v1/incidents/{incident_id}"),
        ("POST", f"/api/v1/incidents/{incident_id}/affected"),
        ("POST", f"/api/v1/incidents/{incident_id}/notice"),
        ("POST", f"/api/v1/incidents/{incident_id}/close"),
    ):
        kwargs = {"json": {}} if path.endswith("affected") else {}
        answer = other.api("owner", method, path, **kwargs)
        assert answer.status_code == 404, (path, answer.text)
    assert other.api("owner", "GET", "/api/v1/alerts").json() == []
    assert other.api("owner", "GET", "/api/v1/incidents").json() == []
    assert outbox(target, world.practice_id, "incident_notice") == []


def _database_refuses_other_roles_and_staff(target, world, incident_id):
    """Past the service's checks, the policies and functions refuse as well."""

    def claims(**extra):
        base = {"sub": str(uuid.uuid4()), "request_id": "t", **extra}
        return json.dumps(base)

    front_desk = claims(
        actor_kind="user", practice_id=world.practice_id, practice_role="front_desk"
    )
    staff = claims(actor_kind="staff")
    with psycopg.connect(target.conninfo("service"), autocommit=True) as conn:
        for who in (front_desk, staff):
            with conn.transaction():
                conn.execute(
                    "select set_config('request.jwt.claims', %s, true)", (who,)
                )
                seen = conn.execute(
                    "select count(*) from incidents.incidents"
                ).fetchone()
                assert seen == (0,)
                notices = conn.execute(
                    "select count(*) from incidents.notices"
                ).fetchone()
                assert notices == (0,)
        with pytest.raises(psycopg.Error) as refused:
            _as(
                conn,
                staff,
                "select incidents_api.compute_affected(%s, now())",
                incident_id,
            )
        assert refused.value.sqlstate == "PR403"
        with pytest.raises(psycopg.Error) as refused:
            _as(conn, front_desk, "select * from incidents_api.staff_incidents()")
        assert refused.value.sqlstate == "PR403"
        # The claims switch the definer functions use is not the service's to call.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as(conn, staff, "select incidents.as_system(null)")


def _as(conn, claims, statement, *params):
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute(statement, params)


def test_staff_work_across_practices_without_phi(client, target, clock, escalated):
    world, alert_id, incident_id, touched = escalated
    second_alert = raise_suspicion(target, world, clock, detector="volume_spike")
    staff = staff_headers(client, target, clock, "staff.incidents@perpetua.example")

    alerts = client.get("/api/v1/staff/alerts", headers=staff)
    assert alerts.status_code == 200, alerts.text
    assert {a["alert_id"] for a in alerts.json()} >= {str(alert_id), str(second_alert)}

    opened = client.post(
        "/api/v1/staff/incidents",
        json={"practice_id": world.practice_id, "alert_id": str(second_alert)},
        headers=staff,
    )
    assert opened.status_code == 201, opened.text
    again = client.post(
        "/api/v1/staff/incidents",
        json={"practice_id": world.practice_id, "alert_id": str(second_alert)},
        headers=staff,
    )
    assert again.json()["id"] == opened.json()["id"]
    assert opened.json()["affected_count"] == 2

    sent = client.post(f"/api/v1/staff/incidents/{incident_id}/notice", headers=staff)
    assert sent.status_code == 201, sent.text
    assert set(sent.json()) == {"notice_id", "recipients", "affected_count"}
    assert len(outbox(target, world.practice_id, "incident_notice")) == 2

    queue = client.get("/api/v1/staff/incidents", headers=staff)
    client.cookies.set(
        SESSION_COOKIE,
        staff["Authorization"].split(" ", 1)[1],
        domain="testserver.local",
    )
    page = client.get("/staff/incidents")
    assert page.status_code == 200
    names = [
        p["name"]
        for p in world.api(
            "owner", "GET", f"/api/v1/incidents/{incident_id}/patients"
        ).json()
    ]
    for text in (queue.text, page.text, alerts.text):
        for secret in (*touched, *names, "description", "affected_patient_ids"):
            assert secret not in text
    listed = {i["id"]: i for i in queue.json()}
    assert listed[incident_id]["affected_count"] == 2
    assert listed[incident_id]["notice_queued_at"] is not None

    # Staff carry no practice: the practice's own routes refuse them.
    for path in (
        "/api/v1/incidents",
        f"/api/v1/incidents/{incident_id}",
        f"/api/v1/incidents/{incident_id}/patients",
        "/api/v1/alerts",
    ):
        assert client.get(path, headers=staff).status_code == 403, path
    refused = client.post(
        "/api/v1/staff/incidents",
        json={"practice_id": world.practice_id},
        headers=world.headers["owner"],
    )
    assert refused.status_code == 403
    unknown = client.post(
        "/api/v1/staff/incidents",
        json={"practice_id": str(uuid.uuid4())},
        headers=staff,
    )
    assert unknown.status_code == 404

    # The console form opens one by hand, discovered now, with no free text.
    token = CSRF.search(page.text).group(1)
    made = client.post(
        "/staff/incidents",
        data={"practice_id": world.practice_id, "csrf_token": token},
        follow_redirects=True,
    )
    assert "The incident is open." in made.text
    manual = [
        i
        for i in client.get("/api/v1/staff/incidents", headers=staff).json()
        if i["detector"] == "manual"
    ]
    assert len(manual) == 1
    by_hand = world.api("owner", "GET", f"/api/v1/incidents/{manual[0]['id']}").json()
    assert by_hand["opened_by_kind"] == "staff"
    assert by_hand["description"] is None
