"""Shared steps for incident tests: a suspect who touches synthetic patients, an
alert raised the way the detectors raise it (`raise_alert`), a Perpetua staff
member with a second factor, and reading the outbox as the delivery job does."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyotp
from starlette.testclient import TestClient
from tests.conftest import admin_connection, owner_connection
from tests.support.factories import STRONG_PASSWORD
from tests.support.world import World

from perpetua.clock import Clock
from perpetua.db.pool import Database
from perpetua.db.target import DatabaseTarget
from perpetua.identity.staff import create_staff
from perpetua.monitoring.alerts import NewAlert, raise_alert

T = TypeVar("T")


def with_db(target: DatabaseTarget, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the test database with a pool of its own."""

    async def go() -> T:
        db = Database(target.conninfo("service"), min_size=1, max_size=2)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


def suspect_touches(
    world: World, role: str = "front_desk", count: int = 3
) -> list[str]:
    """The member with `role` registers and opens `count` synthetic patients."""
    made = [world.patient(role)["id"] for _ in range(count)]
    for patient_id in made:
        answer = world.api(role, "GET", f"/api/v1/patients/{patient_id}")
        assert answer.status_code == 200, answer.text
    return made


def events_of(target: DatabaseTarget, practice_id: str, actor_id: str) -> list[Any]:
    with admin_connection(target) as conn:
        return conn.execute(
            "select id, occurred_at, patient_ids from audit.events "
            "where practice_id = %s and actor_id = %s and outcome = 'success' "
            "order by occurred_at",
            (practice_id, actor_id),
        ).fetchall()


def raise_suspicion(
    target: DatabaseTarget,
    world: World,
    clock: Clock,
    role: str = "front_desk",
    detector: str = "unexplained_access",
) -> uuid.UUID:
    """Raise an alert about the member with `role`, with their audit events as
    evidence, exactly as the detectors do."""
    actor = world.user_ids[role]
    events = events_of(target, world.practice_id, actor)
    assert events, "the suspect has no audit events"
    patients = sorted({p for e in events for p in e[2]})
    alert = NewAlert(
        practice_id=uuid.UUID(world.practice_id),
        detector=detector,
        severity="high",
        summary=f"{len(patients)} patients opened without an explaining visit",
        first_event_at=events[0][1],
        last_event_at=events[-1][1],
        dedup_key=f"{detector}:{actor}:{uuid.uuid4()}",
        actor_kind="user",
        actor_id=uuid.UUID(actor),
        patient_ids=tuple(patients),
        event_ids=tuple(e[0] for e in events),
    )
    made = with_db(target, lambda db: raise_alert(db, alert, clock))
    assert made is not None
    return made


def staff_headers(
    client: TestClient, target: DatabaseTarget, clock: Clock, email: str
) -> dict[str, str]:
    """A Perpetua staff member, enrolled with TOTP and fully signed in."""
    with owner_connection(target) as conn, conn.transaction():
        _user, link = create_staff(
            conn, email, "Staff Testperson", "https://testserver"
        )
    token = link.split("#", 1)[1]
    held = client.post(
        "/api/v1/staff/enrolment", json={"token": token, "password": STRONG_PASSWORD}
    ).json()["token"]
    auth = {"Authorization": f"Bearer {held}"}
    secret = client.post("/api/v1/mfa/totp", headers=auth).json()["secret"]
    app = pyotp.TOTP(secret)
    confirmed = client.post(
        "/api/v1/mfa/totp/confirmation",
        json={"code": app.at(clock.now())},
        headers=auth,
    )
    assert confirmed.status_code < 300, confirmed.text
    clock.advance(seconds=30)
    pending = client.post(
        "/api/v1/sessions", json={"email": email, "password": STRONG_PASSWORD}
    ).json()
    full = client.post(
        "/api/v1/sessions/current/second-factor",
        json={"code": app.at(clock.now())},
        headers={"Authorization": f"Bearer {pending['token']}"},
    )
    assert full.status_code < 300, full.text
    return {"Authorization": f"Bearer {full.json()['token']}"}


def outbox(target: DatabaseTarget, practice_id: str, kind: str) -> list[Any]:
    with admin_connection(target) as conn:
        return conn.execute(
            "select id, to_address, subject, body_text, status, sent_at "
            "from app.mail_outbox where practice_id = %s and kind = %s "
            "order by to_address",
            (practice_id, kind),
        ).fetchall()


def at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)
