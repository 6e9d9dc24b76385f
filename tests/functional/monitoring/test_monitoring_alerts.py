"""The shared alert table: raised once per finding by the system, emailed to the
practice's owners and managers, seen and triaged only by them, and visible to
Perpetua staff only as counts."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from functools import partial

import pytest
from tests.conftest import admin_connection
from tests.support.world import build_world

from perpetua.access.claims import Claims, system_claims
from perpetua.errors import Forbidden
from perpetua.monitoring.alerts import NewAlert, raise_alert

NOW = dt.datetime.now(dt.UTC)


def an_alert(practice_id: str, key: str = "test:1") -> NewAlert:
    return NewAlert(
        practice_id=uuid.UUID(practice_id),
        detector="unexplained_access",
        severity="medium",
        summary="1 access(es) to one patient with no explaining relationship",
        first_event_at=NOW - dt.timedelta(minutes=5),
        last_event_at=NOW - dt.timedelta(minutes=4),
        dedup_key=key,
        actor_kind="user",
        actor_id=uuid.uuid4(),
        patient_ids=(uuid.uuid4(),),
        event_ids=(uuid.uuid4(), uuid.uuid4()),
    )


def member_claims(world, role: str) -> Claims:
    return Claims(
        actor_kind="user",
        actor_id=uuid.UUID(world.user_ids[role]),
        request_id="test",
        practice_id=uuid.UUID(world.practice_id),
        practice_role=role,
    )


def test_alert_is_raised_once_and_emailed_to_owners_and_managers(
    client, target, with_db
):
    world = build_world(client, target, baa=False)

    first = with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))
    again = with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))

    assert first is not None
    assert again is None
    with admin_connection(target) as conn:
        mails = conn.execute(
            "select to_address, subject, body_text from app.mail_outbox "
            "where kind = 'monitoring_alert' and practice_id = %s",
            (world.practice_id,),
        ).fetchall()
        alerts = conn.execute(
            "select count(*) from monitor.alerts where practice_id = %s",
            (world.practice_id,),
        ).fetchone()
    assert alerts == (1,)
    assert len(mails) == 2
    assert {m[0].split(".")[0] for m in mails} >= {"manager"}
    assert all(str(first) in m[2] for m in mails)
    # The email names the detector and the alert, never the evidence itself.
    assert all(
        str(an_alert(world.practice_id).patient_ids[0]) not in m[2] for m in mails
    )


def test_owners_and_managers_triage_their_alerts_and_nobody_else_sees_them(
    client, target, with_db
):
    world = build_world(client, target, baa=False)
    alert_id = with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))

    async def triage(db, role, status):
        async with db.transaction(member_claims(world, role)) as conn:
            cur = await conn.execute("select id from monitor.alerts")
            seen = [r["id"] for r in await cur.fetchall()]
            cur = await conn.execute(
                "update monitor.alerts set status = %s where id = %s returning id",
                (status, alert_id),
            )
            return seen, [r["id"] for r in await cur.fetchall()]

    for role, status in (("owner", "acknowledged"), ("manager", "escalated")):
        mine = with_db(partial(triage, role=role, status=status))
        assert mine == ([alert_id], [alert_id])
    for role in ("front_desk", "biller", "provider"):
        assert with_db(partial(triage, role=role, status="dismissed")) == ([], [])
    with admin_connection(target) as conn:
        assert conn.execute(
            "select status from monitor.alerts where id = %s", (alert_id,)
        ).fetchone() == ("escalated",)


def test_triage_cannot_rewrite_the_evidence(client, target, with_db):
    world = build_world(client, target, baa=False)
    alert_id = with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))

    async def rewrite(db):
        async with db.transaction(member_claims(world, "owner")) as conn:
            await conn.execute(
                "update monitor.alerts set summary = 'nothing here' where id = %s",
                (alert_id,),
            )

    with pytest.raises(Forbidden):
        with_db(rewrite)
    with pytest.raises(ValueError, match="severity"):
        with_db(
            lambda db: raise_alert(
                db, replace(an_alert(world.practice_id, "test:2"), severity="dire")
            )
        )


def test_another_practices_owner_sees_nothing(client, target, with_db):
    world = build_world(client, target, baa=False)
    other = build_world(client, target, baa=False)
    with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))

    async def look(db):
        async with db.transaction(member_claims(other, "owner")) as conn:
            cur = await conn.execute("select id from monitor.alerts")
            return await cur.fetchall()

    assert with_db(look) == []


def test_staff_queue_shows_counts_to_staff_only(client, target, with_db):
    world = build_world(client, target, baa=False)
    with_db(lambda db: raise_alert(db, an_alert(world.practice_id)))
    staff = Claims(actor_kind="staff", actor_id=uuid.uuid4(), request_id="test")

    async def queue(db, claims):
        async with db.transaction(claims) as conn:
            cur = await conn.execute("select * from monitor.staff_queue()")
            return await cur.fetchall()

    rows = with_db(lambda db: queue(db, staff))
    assert [(r["detector"], r["patient_count"], r["event_count"]) for r in rows] == [
        ("unexplained_access", 1, 2)
    ]
    assert "summary" not in rows[0]
    assert "patient_ids" not in rows[0]
    with pytest.raises(Forbidden):
        with_db(lambda db: queue(db, member_claims(world, "owner")))
    with pytest.raises(Forbidden):
        with_db(lambda db: queue(db, system_claims("test")))
