"""The permission matrix, cell by cell: the documented table, the database table
and the API's behaviour for every role x category x action agree."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import owner_connection
from tests.support.world import ROLES, World, as_owner_role, build_world, system_claims

from perpetua.access.permissions import ACTIONS, CATEGORIES

DOC = Path(__file__).parents[3] / "docs" / "permissions.md"


def documented_matrix() -> dict[tuple[str, str, str], str]:
    text = DOC.read_text()
    table = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    lines = [line for line in table.strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells: dict[tuple[str, str, str], str] = {}
    for line in lines[2:]:
        values = [c.strip() for c in line.strip("|").split("|")]
        role = values[0]
        for category, value in zip(header[1:], values[1:], strict=True):
            if value == "-":
                continue
            scope = "all"
            if value.startswith("own:"):
                scope, value = "own", value[len("own:") :]
            for action in re.split(r",\s*", value.strip()):
                cells[(role, category, action)] = scope
    return cells


def database_matrix(target) -> dict[tuple[str, str, str], str]:
    with owner_connection(target) as conn:
        rows = conn.execute(
            "select role, category, action, scope from perpetua.permissions"
        ).fetchall()
    return {(r, c, a): s for r, c, a, s in rows}


def test_documented_matrix_is_the_database_matrix(target):
    assert documented_matrix() == database_matrix(target)


def _call(world: World, target, role: str, category: str, action: str) -> Any:
    """Exercise one cell through the API; None where no endpoint exists."""
    fd = "front_desk"
    own = world.own_patient
    if category == "demographics":
        if action == "view":
            return world.api(role, "GET", f"/api/v1/patients/{own}")
        if action == "create":
            body = {"name": "Cell Testperson", "birth_date": "1970-01-01"}
            return world.api(role, "POST", "/api/v1/patients", json=body)
        if action == "update":
            body = {"name": "Own Patient", "birth_date": "1980-02-29"}
            return world.api(role, "PUT", f"/api/v1/patients/{own}", json=body)
        if action == "delete":
            fresh = world.patient(fd)["id"]
            return world.api(role, "DELETE", f"/api/v1/patients/{fresh}")
        return world.api(role, "GET", "/api/v1/patients/export.csv")
    if category == "schedule":
        if action == "view":
            return world.api(role, "GET", f"/api/v1/appointments/{world.own_visit}")
        if action == "create":
            body = {
                "patient_id": own,
                "provider_id": world.provider_id,
                "starts_at": "2026-03-03T15:00:00Z",
                "ends_at": "2026-03-03T15:30:00Z",
            }
            return world.api(role, "POST", "/api/v1/appointments", json=body)
        if action == "update":
            return world.api(
                role,
                "PATCH",
                f"/api/v1/appointments/{world.own_visit}",
                json={"status": "confirmed"},
            )
        if action == "delete":
            fresh = world.appointment(own)["id"]
            return world.api(role, "DELETE", f"/api/v1/appointments/{fresh}")
        return world.api(role, "GET", "/api/v1/schedule/export.csv?day=2026-03-02")
    if category == "insurance":
        if action == "view":
            return world.api(role, "GET", f"/api/v1/patients/{own}/coverage")
        if action in ("create", "update"):
            patient = own if action == "update" else world.patient(fd)["id"]
            body = {
                "payer": "Synthetic Mutual",
                "member_id": "SYN" + uuid.uuid4().hex[:6],
            }
            return world.api(
                role, "PUT", f"/api/v1/patients/{patient}/coverage", json=body
            )
        if action == "delete":
            patient = world.patient(fd)["id"]
            made = world.api(
                fd,
                "PUT",
                f"/api/v1/patients/{patient}/coverage",
                json={"payer": "Synthetic Mutual", "member_id": "DEL123"},
            ).json()
            return world.api(role, "DELETE", f"/api/v1/coverage/{made['id']}")
        return world.api(role, "GET", "/api/v1/coverage/export.csv")
    if category == "calls":
        window = "since=2026-01-01T00:00:00Z&until=2026-12-31T00:00:00Z"
        if action == "view":
            return world.api(role, "GET", f"/api/v1/calls/{world.own_call}")
        if action == "create":
            body = {"direction": "inbound", "started_at": "2026-03-02T14:00:00Z"}
            return world.api(role, "POST", "/api/v1/calls", json=body)
        if action == "delete":
            fresh = world.make_call(target)
            return world.api(role, "DELETE", f"/api/v1/calls/{fresh}")
        if action == "export":
            return world.api(role, "GET", f"/api/v1/calls/export.csv?{window}")
        return None
    if category == "clinical":
        if action == "view":
            return world.api(role, "GET", f"/api/v1/patients/{own}/clinical-documents")
        return None
    if category == "audit_log":
        if action == "view":
            return world.api(role, "GET", f"/api/v1/patients/{own}/access-report")
        if action == "export":
            window = "since=2020-01-01T00:00:00Z&until=2030-01-01T00:00:00Z"
            return world.api(role, "GET", f"/api/v1/audit/export.csv?{window}")
        return None
    raise AssertionError(category)


def _prepare(world: World, target) -> None:
    own = world.patient()
    world.own_patient = own["id"]
    world.own_visit = world.appointment(own["id"])["id"]
    response = world.api(
        "front_desk",
        "PUT",
        f"/api/v1/patients/{own['id']}/coverage",
        json={"payer": "Synthetic Mutual", "member_id": "OWN123"},
    )
    assert response.status_code == 200, response.text
    world.own_call = world.make_call(target, patient_id=own["id"])


@pytest.mark.parametrize("role", ROLES)
def test_every_cell_of_the_matrix_holds_through_the_api(client, target, role):
    world = build_world(client, target)
    _prepare(world, target)
    matrix = database_matrix(target)
    checked = 0
    for category in CATEGORIES:
        for action in ACTIONS:
            response = _call(world, target, role, category, action)
            permitted = (role, category, action) in matrix
            if category == "clinical":
                permitted = False  # no agent needing clinical data is enabled
            if response is None:
                # No endpoint for this cell: the matrix must not promise one.
                assert not any((r, category, action) in matrix for r in ROLES), (
                    category,
                    action,
                )
                continue
            checked += 1
            if permitted:
                assert response.status_code in (200, 201, 204), (
                    role,
                    category,
                    action,
                    response.text,
                )
            else:
                assert response.status_code == 403, (
                    role,
                    category,
                    action,
                    response.status_code,
                    response.text,
                )
                assert response.json()["code"] == "forbidden"
    assert checked >= 20


def test_provider_sees_own_patients_only(client, target):
    world = build_world(client, target)
    own = world.patient()
    world.appointment(own["id"], world.provider_id)
    other = world.patient()
    world.appointment(other["id"], world.other_provider_id)

    assert (
        world.api("provider", "GET", f"/api/v1/patients/{own['id']}").status_code == 200
    )
    response = world.api("provider", "GET", f"/api/v1/patients/{other['id']}")
    assert response.status_code == 404
    assert other["name"] not in response.text


def test_clinical_documents_open_only_when_the_practice_enables_them(client, target):
    world = build_world(client, target)
    own = world.patient()
    world.appointment(own["id"])
    path = f"/api/v1/patients/{own['id']}/clinical-documents"
    for role in ROLES:
        assert world.api(role, "GET", path).status_code == 403

    owner = {
        **system_claims(world.practice_id),
        "actor_kind": "user",
        "sub": world.user_ids["owner"],
        "practice_role": "owner",
    }
    with as_owner_role(target, owner) as conn:
        conn.execute(
            "insert into app.practice_features (practice_id, clinical_agent_enabled) "
            "values (%s, true)",
            (world.practice_id,),
        )
    assert world.api("provider", "GET", path).status_code == 200
    assert world.api("owner", "GET", path).status_code == 403
