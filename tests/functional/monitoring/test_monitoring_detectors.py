"""The detectors against real requests: an access nothing explains, a member
opening a patient who shares their phone, a request for another practice's
record, and a revoked API token presented again each become one alert, emailed to
owners and managers; explained work raises nothing, and only the system may run
the detectors."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from tests.conftest import admin_connection
from tests.functional.monitoring.conftest import later
from tests.support.factories import sign_up
from tests.support.world import build_world, execute_baa

from perpetua.access.claims import Claims, system_claims
from perpetua.clock import Clock
from perpetua.errors import Forbidden, InvalidInput
from perpetua.monitoring import thresholds
from perpetua.monitoring.runner import run_tick
from perpetua.monitoring.tags import identity_tags, replace_member_tags


def alerts_of(target, practice_id: str) -> list[dict]:
    with admin_connection(target) as conn:
        cur = conn.execute(
            "select detector, severity, actor_id, patient_ids, event_ids, summary "
            "from monitor.alerts where practice_id = %s order by detector",
            (practice_id,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def set_limit(with_db, practice_id: str, name: str, value: str) -> None:
    async def apply(db):
        async with db.transaction(system_claims("test")) as conn:
            await thresholds.set_threshold(
                conn, uuid.UUID(practice_id), name, thresholds.parse_value(value)
            )

    with_db(apply)


def test_unexplained_access_is_alerted_once_and_explained_access_is_not(
    client, target, with_db
):
    world = build_world(client, target)
    # Registration explains an access for two hours; these patients were
    # registered just now, so shrink that window to nothing for the test.
    set_limit(with_db, world.practice_id, "explain.window_minutes", "0")
    lonely = world.patient()["id"]
    booked = world.patient()["id"]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    world.appointment(
        booked,
        starts_at=soon.isoformat(),
        ends_at=(soon + dt.timedelta(minutes=30)).isoformat(),
    )
    for patient in (lonely, booked):
        opened = world.api("biller", "GET", f"/api/v1/patients/{patient}")
        assert opened.status_code == 200, opened.text

    first = with_db(lambda db: run_tick(db, Clock(), now=later(1)))
    again = with_db(lambda db: run_tick(db, Clock(), now=later(2)))

    # The front desk's read-back after registering counts too (the window that
    # would explain it is zero here); the biller's read of the booked patient
    # does not.
    alerts = alerts_of(target, world.practice_id)
    biller = [a for a in alerts if a["actor_id"] == uuid.UUID(world.user_ids["biller"])]
    assert [(a["detector"], a["severity"], a["patient_ids"]) for a in biller] == [
        ("unexplained_access", "medium", [uuid.UUID(lonely)])
    ]
    assert all(uuid.UUID(booked) not in a["patient_ids"] for a in alerts)
    assert len(first.raised) == len(alerts)
    assert again.raised == ()
    with admin_connection(target) as conn:
        mails = conn.execute(
            "select body_text from app.mail_outbox where kind = 'monitoring_alert' "
            "and practice_id = %s",
            (world.practice_id,),
        ).fetchall()
    assert len(mails) == 2 * len(alerts)  # the owner and the manager, each
    assert all("Testpatient" not in m[0] and lonely not in m[0] for m in mails)


def test_member_opening_a_patient_with_their_own_phone_is_alerted(
    client, target, with_db, vault
):
    world = build_world(client, target)
    phone = "+1 212 555 0142"
    relative = world.patient(phone=phone)["id"]
    practice = uuid.UUID(world.practice_id)
    member = uuid.UUID(world.user_ids["front_desk"])

    async def tag(db):
        async with db.transaction(system_claims("test")) as conn:
            tags = identity_tags(vault.index, practice, phone="(212) 555-0142")
            await replace_member_tags(conn, practice, member, tags, ["phone"])

    with_db(tag)
    assert (
        world.api("front_desk", "GET", f"/api/v1/patients/{relative}").status_code
        == 200
    )

    with_db(lambda db: run_tick(db, Clock(), now=later(1)))

    alerts = alerts_of(target, world.practice_id)
    assert [(a["detector"], a["severity"]) for a in alerts] == [
        ("shared_identity", "high")
    ]
    assert "phone" in alerts[0]["summary"]
    assert phone not in alerts[0]["summary"]


def test_request_for_another_practices_patient_is_alerted(client, target, with_db):
    world = build_world(client, target)
    other = sign_up(client)
    execute_baa(target, other["practice"]["id"])
    made = client.post(
        "/api/v1/patients",
        headers=other["auth"],
        json={"name": "Otherpatient Synth", "birth_date": "1975-05-05"},
    )
    assert made.status_code == 201, made.text

    probe = world.api("front_desk", "GET", f"/api/v1/patients/{made.json()['id']}")
    assert probe.status_code == 404
    with_db(lambda db: run_tick(db, Clock(), now=later(1)))

    alerts = alerts_of(target, world.practice_id)
    assert [(a["detector"], a["severity"]) for a in alerts] == [
        ("cross_practice", "critical")
    ]
    assert alerts_of(target, other["practice"]["id"]) == []


def test_revoked_api_token_presented_again_is_recorded_and_alerted(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    made = world.api(
        "owner", "POST", "/api/v1/tokens",
        json={"name": "Phone system", "scopes": ["practice:view"]},
    ).json()  # fmt: skip
    assert (
        world.api("owner", "DELETE", f"/api/v1/tokens/{made['id']}").status_code == 204
    )

    refused = client.get(
        "/api/v1/practice", headers={"Authorization": f"Bearer {made['token']}"}
    )
    assert refused.status_code == 401
    with_db(lambda db: run_tick(db, Clock(), now=later(1)))

    with admin_connection(target) as conn:
        recorded = conn.execute(
            "select practice_id::text, detail ->> 'token_id' from app.security_events "
            "where kind = 'practice:api_token:revoked_used'"
        ).fetchall()
    assert recorded == [(world.practice_id, made["id"])]
    alerts = alerts_of(target, world.practice_id)
    assert [(a["detector"], a["severity"], str(a["actor_id"])) for a in alerts] == [
        ("revoked_token", "critical", made["id"])
    ]


def test_only_the_system_runs_detectors_and_it_gains_no_phi_privilege(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    owner = Claims(
        actor_kind="user",
        actor_id=uuid.UUID(world.user_ids["owner"]),
        request_id="test",
        practice_id=uuid.UUID(world.practice_id),
        practice_role="owner",
    )

    async def tick_as(db, claims):
        async with db.transaction(claims) as conn:
            await conn.execute("select * from monitor.tick(now())")

    async def read_phi_as_system(db):
        async with db.transaction(system_claims("test")) as conn:
            await conn.execute("select count(*) from phi.appointments")

    with pytest.raises(Forbidden):
        with_db(lambda db: tick_as(db, owner))
    with pytest.raises(Forbidden):
        with_db(read_phi_as_system)


def test_thresholds_override_defaults_and_refuse_nonsense(client, target, with_db):
    world = build_world(client, target, baa=False)
    practice = uuid.UUID(world.practice_id)

    async def limits(db, name, value):
        async with db.transaction(system_claims("test")) as conn:
            await thresholds.set_threshold(conn, practice, name, value)
            return {t.name: t.value for t in await thresholds.effective(conn, practice)}

    changed = with_db(lambda db: limits(db, "denied.count", decimal.Decimal(9)))
    restored = with_db(lambda db: limits(db, "denied.count", None))

    assert changed["denied.count"] == 9
    assert restored["denied.count"] == 5
    with pytest.raises(InvalidInput):
        with_db(lambda db: limits(db, "denied.cuont", decimal.Decimal(9)))
    for bad in ("-1", "NaN", "Infinity", "lots"):
        with pytest.raises(InvalidInput):
            thresholds.parse_value(bad)
