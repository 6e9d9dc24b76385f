"""Patients registered or renamed through the API carry name and surname tags, so
the detectors see a member opening a co-worker's record or a relative's (same
surname) without anyone tagging patients by hand."""

from __future__ import annotations

import uuid

from tests.conftest import admin_connection
from tests.functional.monitoring.conftest import later
from tests.functional.monitoring.test_monitoring_detectors import (
    alerts_of,
    set_limit,
)
from tests.support.world import build_world

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.monitoring.runner import run_tick
from perpetua.monitoring.tags import identity_tags, replace_member_tags


def tags_of(target, patient_id: str) -> dict[str, bytes]:
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select kind, tag from monitor.patient_tags where patient_id = %s",
            (patient_id,),
        ).fetchall()
    return {kind: bytes(tag) for kind, tag in rows}


def test_registered_and_renamed_patients_are_tagged(client, target, vault):
    world = build_world(client, target)
    practice = uuid.UUID(world.practice_id)
    made = world.patient(name="  Jordan   Quillfeather ")["id"]

    expected = dict(
        identity_tags(vault.index, practice, full_name="Jordan Quillfeather")
    )
    assert set(expected) == {"name", "surname"}
    assert tags_of(target, made) == expected

    renamed = world.api(
        "front_desk",
        "PUT",
        f"/api/v1/patients/{made}",
        json={"name": "Jordan Synthwick", "birth_date": "1980-02-29"},
    )
    assert renamed.status_code == 200, renamed.text
    now = tags_of(target, made)
    assert now == dict(
        identity_tags(vault.index, practice, full_name="Jordan Synthwick")
    )
    assert now["surname"] != expected["surname"]


def test_relative_and_coworker_records_are_alerted(client, target, with_db, vault):
    world = build_world(client, target)
    practice = uuid.UUID(world.practice_id)
    set_limit(with_db, world.practice_id, "explain.window_minutes", "0")
    members = {"front_desk": "Robin Synthwick", "biller": "Casey Quillfeather"}

    async def tag_members(db):
        async with db.transaction(system_claims("test")) as conn:
            for role, name in members.items():
                tags = identity_tags(vault.index, practice, full_name=name)
                user = uuid.UUID(world.user_ids[role])
                await replace_member_tags(
                    conn, practice, user, tags, ["name", "surname"]
                )

    with_db(tag_members)
    coworker = world.patient(name="Robin Synthwick")["id"]
    relative = world.patient(name="Jordan Quillfeather")["id"]
    stranger = world.patient(name="Alex Marrowby")["id"]
    for patient in (coworker, relative, stranger):
        opened = world.api("biller", "GET", f"/api/v1/patients/{patient}")
        assert opened.status_code == 200, opened.text

    with_db(lambda db: run_tick(db, Clock(), now=later(1)))

    biller = uuid.UUID(world.user_ids["biller"])
    found = {
        (a["detector"], a["patient_ids"][0])
        for a in alerts_of(target, world.practice_id)
        if a["actor_id"] == biller and a["detector"] != "unexplained_access"
    }
    assert found == {
        ("coworker_record", uuid.UUID(coworker)),
        ("shared_identity", uuid.UUID(relative)),
    }
    summaries = [
        a["summary"]
        for a in alerts_of(target, world.practice_id)
        if a["detector"] == "shared_identity"
    ]
    assert summaries
    assert all("surname" in s for s in summaries)
    assert all("Quillfeather" not in s and "Synthwick" not in s for s in summaries)
