"""The database is the gate to PHI: the service role cannot touch phi tables,
every read leaves an audit event in the same transaction, and nothing is stored
before a Business Associate Agreement."""

from __future__ import annotations

import psycopg
import pytest
from tests.conftest import admin_connection, admin_dump, owner_connection
from tests.support.world import build_world

from perpetua.db.target import DatabaseTarget

PHI_TABLES = (
    "providers",
    "patients",
    "appointments",
    "coverages",
    "calls",
    "clinical_documents",
    "break_glass_grants",
    "blob_objects",
    "deletion_certificates",
    "call_media",
    "call_holds",
    "twilio_recording_fetches",
)


@pytest.mark.parametrize("table", PHI_TABLES)
def test_service_role_cannot_select_any_phi_table(target: DatabaseTarget, table):
    with (
        psycopg.connect(target.conninfo("service")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(f"select * from phi.{table}")


def test_every_phi_table_is_listed_and_forces_row_level_security(target):
    with owner_connection(target) as conn:
        rows = conn.execute(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'phi' and c.relkind in ('r', 'p')"
        ).fetchall()
    assert {r[0] for r in rows} == set(PHI_TABLES)
    assert all(r[1] and r[2] for r in rows)


def test_service_role_cannot_change_or_erase_audit_events(target):
    with psycopg.connect(target.conninfo("service")) as conn:
        for statement in (
            "select * from audit.events",
            "delete from audit.events",
            "truncate audit.events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_even_a_superuser_cannot_update_or_delete_audit_events(client, target):
    world = build_world(client, target)
    world.patient()
    with admin_connection(target) as conn:
        for statement in (
            "update audit.events set reason = 'x'",
            "delete from audit.events",
            "truncate audit.events",
        ):
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(statement)
            assert refused.value.sqlstate == "PA001"


def test_no_phi_before_a_signed_baa(client, target):
    world = build_world(client, target, baa=False)
    response = world.api(
        "owner", "POST", "/api/v1/providers", json={"display_name": "Dr. No"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "baa_not_signed"
    response = world.api(
        "front_desk",
        "POST",
        "/api/v1/patients",
        json={"name": "Never Stored", "birth_date": "1990-01-01"},
    )
    assert response.json()["code"] == "baa_not_signed"


def test_a_read_leaves_one_audit_event_with_who_when_why(client, target):
    world = build_world(client, target)
    patient = world.patient()
    response = world.api(
        "front_desk",
        "GET",
        f"/api/v1/patients/{patient['id']}",
        headers={"X-Access-Reason": "confirming tomorrow's visit"},
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select actor_kind, actor_id, actor_role, action, resource_type, "
            "resource_ids, patient_ids, purpose_of_use, reason, outcome "
            "from audit.events where request_id = %s",
            (request_id,),
        ).fetchall()
    assert len(rows) == 1
    kind, actor, role, action, rtype, rids, pids, purpose, reason, outcome = rows[0]
    assert (kind, str(actor), role) == (
        "user",
        world.user_ids["front_desk"],
        "front_desk",
    )
    assert (action, rtype, outcome) == ("view", "patient", "success")
    assert [str(x) for x in rids] == [patient["id"]]
    assert [str(x) for x in pids] == [patient["id"]]
    assert purpose == "HOPERAT"
    assert reason == "confirming tomorrow's visit"


def test_a_failed_audit_write_makes_the_read_fail(client, target):
    world = build_world(client, target)
    patient = world.patient()
    with owner_connection(target) as conn:
        conn.execute(
            "create function audit.break_it() returns trigger language plpgsql as "
            "$$ begin raise exception 'disk full'; end $$"
        )
        conn.execute(
            "create trigger break_it before insert on audit.events "
            "for each row execute function audit.break_it()"
        )
    response = world.api("front_desk", "GET", f"/api/v1/patients/{patient['id']}")
    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert patient["name"] not in response.text


def test_writes_are_recorded_by_the_database(client, target):
    world = build_world(client, target)
    patient = world.patient()
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select action, resource_type from audit.events "
            "where %s = any (resource_ids) order by occurred_at",
            (patient["id"],),
        ).fetchall()
    assert ("create", "patient") in rows


def test_denied_attempts_are_recorded(client, target):
    world = build_world(client, target)
    patient = world.patient()
    response = world.api(
        "biller",
        "PUT",
        f"/api/v1/patients/{patient['id']}",
        json={"name": "Renamed", "birth_date": "1980-02-29"},
    )
    assert response.status_code == 403
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select action, outcome, actor_role from audit.events "
            "where request_id = %s",
            (response.headers["x-request-id"],),
        ).fetchall()
    assert rows == [("update", "denied", "biller")]


def test_a_database_dump_holds_no_readable_phi(client, target):
    world = build_world(client, target)
    patient = world.patient(name="Quillon Vexworth", phone="+1 555 013 9876")
    world.api(
        "biller",
        "PUT",
        f"/api/v1/patients/{patient['id']}/coverage",
        json={"payer": "Synthetic Health", "member_id": "ZXQ998877"},
    )
    text = admin_dump(target)
    for secret in ("Quillon", "Vexworth", "0139876", "ZXQ998877"):
        assert secret not in text


def test_no_practice_sees_another_practices_patient(client, target):
    first = build_world(client, target)
    second = build_world(client, target)
    patient = first.patient()
    response = second.api("owner", "GET", f"/api/v1/patients/{patient['id']}")
    assert response.status_code == 404
    response = second.api(
        "front_desk",
        "POST",
        "/api/v1/patients/search",
        json={"phone": patient["phone"]},
    )
    assert response.json() == []
