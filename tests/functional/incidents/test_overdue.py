"""An overdue clock escalates loudly and once: the job, run with the app's clock,
records the overdue state a single time however often it runs, emails the owners
and managers once, and the console shows a banner; a closed incident stays quiet."""

from __future__ import annotations

from tests.conftest import admin_connection
from tests.functional.incidents.helpers import (
    outbox,
    raise_suspicion,
    suspect_touches,
    with_db,
)
from tests.support.factories import STRONG_PASSWORD
from tests.support.world import build_world

from perpetua.incidents.overdue import escalate_overdue
from perpetua.web.app import background_jobs
from perpetua.web.context import SESSION_COOKIE

ORIGIN = "https://testserver"


def _sign_in_again(world, target, role):
    """Sessions end while the clock jumps a day; sign in as a person would."""
    with admin_connection(target) as conn:
        (email,) = conn.execute(
            "select email from app.users where id = %s", (world.user_ids[role],)
        ).fetchone()
    token = world.client.post(
        "/api/v1/sessions", json={"email": email, "password": STRONG_PASSWORD}
    ).json()["token"]
    world.headers[role] = {"Authorization": f"Bearer {token}"}
    return token


def test_overdue_practice_notice_escalates_once(client, target, clock):
    world = build_world(client, target)
    suspect_touches(world, count=1)
    alert_id = raise_suspicion(target, world, clock)
    incident_id = world.api(
        "owner", "POST", f"/api/v1/alerts/{alert_id}/escalate"
    ).json()["id"]

    assert with_db(target, lambda db: escalate_overdue(db, clock, ORIGIN)) == 0
    # The same coroutine runs in `perpetua serve` as a job on the app's clock.
    jobs = [job.name for job in background_jobs(client.app.state.services)]
    assert "incidents.escalate_overdue" in jobs

    # A second incident, assessed as low probability and closed, stays quiet.
    quiet = world.api(
        "owner",
        "POST",
        "/api/v1/incidents",
        json={"discovered_at": clock.now().isoformat()},
    ).json()["id"]
    world.api(
        "owner",
        "PUT",
        f"/api/v1/incidents/{quiet}/assessment",
        json={
            "nature_extent": "One record's demographics.",
            "unauthorized_person": "A colleague bound by the same obligations.",
            "acquired_or_viewed": "Opened by mistake and closed at once.",
            "mitigation": "Confirmed in writing that nothing was kept.",
            "conclusion": "low_probability",
        },
    )
    closed = world.api("owner", "POST", f"/api/v1/incidents/{quiet}/close")
    assert closed.json()["status"] == "closed"

    clock.advance(hours=24, minutes=1)
    first = with_db(target, lambda db: escalate_overdue(db, clock, ORIGIN))
    second = with_db(target, lambda db: escalate_overdue(db, clock, ORIGIN))
    assert (first, second) == (1, 0)

    with admin_connection(target) as conn:
        rows = conn.execute(
            "select clock, escalated_at from incidents.escalations "
            "where incident_id = %s",
            (incident_id,),
        ).fetchall()
    assert [r[0] for r in rows] == ["practice_notice"]
    assert rows[0][1] == clock.now()
    mails = outbox(target, world.practice_id, "incident_overdue")
    assert len(mails) == 2
    assert all(incident_id in m[3] and "24 hours" in m[3] for m in mails)

    token = _sign_in_again(world, target, "owner")
    shown = world.api("owner", "GET", f"/api/v1/incidents/{incident_id}").json()
    assert shown["escalated"] == ["practice_notice"]
    notice = next(c for c in shown["clocks"] if c["clock"] == "practice_notice")
    assert notice["state"] == "overdue"

    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/")
    # Every console page an owner opens, not only the incident pages, carries it.
    everywhere = (
        "/dashboard",
        "/incidents",
        f"/incidents/{incident_id}",
        "/alerts",
        "/patients",
        "/calls",
        "/audit",
        "/members",
        "/settings/practice",
        "/security",
    )
    for path in everywhere:
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'data-testid="incident-overdue-banner"' in page.text, path
        assert "OVERDUE" in page.text or "Overdue" in page.text

    # Front-desk staff cannot open incidents, and their pages carry no banner.
    desk = _sign_in_again(world, target, "front_desk")
    client.cookies.set(SESSION_COOKIE, desk, domain="testserver.local", path="/")
    for path in ("/dashboard", "/patients", "/schedule"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'data-testid="incident-overdue-banner"' not in page.text, path
    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/")

    # Sixty days on, the individuals' clock escalates too; the notice's not again.
    clock.advance(days=60)
    assert with_db(target, lambda db: escalate_overdue(db, clock, ORIGIN)) >= 1
    assert with_db(target, lambda db: escalate_overdue(db, clock, ORIGIN)) == 0
    with admin_connection(target) as conn:
        clocks = [
            r[0]
            for r in conn.execute(
                "select clock from incidents.escalations where incident_id = %s",
                (incident_id,),
            ).fetchall()
        ]
    assert clocks.count("practice_notice") == 1
    assert "individuals" in clocks
    with admin_connection(target) as conn:
        quiet_rows = conn.execute(
            "select count(*) from incidents.escalations where incident_id = %s",
            (quiet,),
        ).fetchone()
    assert quiet_rows == (0,)
