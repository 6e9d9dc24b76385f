"""A synthetic practice with an executed BAA and one signed-in member per role,
built through the real API and, where no API exists yet, through the owner role
under the same row-level policies. All people and numbers are invented."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import psycopg
from starlette.testclient import TestClient

from perpetua.db.target import DatabaseTarget
from perpetua.identity.passwords import hash_password
from tests.support.factories import STRONG_PASSWORD, sign_up

ROLES = ("owner", "manager", "biller", "front_desk", "provider")


@cache
def _password_hash() -> str:
    return hash_password(STRONG_PASSWORD)


def as_owner_role(
    target: DatabaseTarget, claims: dict[str, Any]
) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(target.conninfo("owner"))
    _act_as(conn, claims)
    return conn


def _act_as(
    conn: psycopg.Connection[tuple[object, ...]], claims: dict[str, Any]
) -> None:
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)", (json.dumps(claims),)
    )


def system_claims(practice_id: str) -> dict[str, Any]:
    return {
        "actor_kind": "system",
        "sub": "00000000-0000-0000-0000-000000000000",
        "request_id": "test-setup",
        "practice_id": practice_id,
    }


def execute_baa(target: DatabaseTarget, practice_id: str) -> None:
    with psycopg.connect(target.conninfo("owner")) as conn:
        _record_baa(conn, practice_id)


def _record_baa(conn: psycopg.Connection[tuple[object, ...]], practice_id: str) -> None:
    _act_as(conn, system_claims(practice_id))
    conn.execute(
        "insert into app.baa_executions (practice_id, version, document_sha256) "
        "values (%s, 'test', %s)",
        (practice_id, "0" * 64),
    )
    conn.commit()


def add_member(target: DatabaseTarget, practice_id: str, role: str, email: str) -> str:
    with psycopg.connect(target.conninfo("owner")) as conn:
        return _insert_member(conn, practice_id, role, email)


def _insert_member(
    conn: psycopg.Connection[tuple[object, ...]],
    practice_id: str,
    role: str,
    email: str,
) -> str:
    """One member in a transaction of its own, acting as that new user."""
    user_id = str(uuid.uuid4())
    _act_as(
        conn,
        {
            "actor_kind": "user",
            "sub": user_id,
            "request_id": "test-setup",
            "practice_id": practice_id,
            "practice_role": "owner",
        },
    )
    conn.execute(
        "insert into app.users (id, email, full_name, password_hash) "
        "values (%s, %s, %s, %s)",
        (user_id, email, f"Test {role}", _password_hash()),
    )
    conn.execute(
        "insert into app.memberships (practice_id, user_id, role) values (%s, %s, %s)",
        (practice_id, user_id, role),
    )
    conn.commit()
    return user_id


def link_provider(
    target: DatabaseTarget,
    practice_id: str,
    owner_id: str,
    user_id: str,
    provider_id: str,
) -> None:
    claims = {
        "actor_kind": "user",
        "sub": owner_id,
        "request_id": "test-setup",
        "practice_id": practice_id,
        "practice_role": "owner",
    }
    with as_owner_role(target, claims) as conn:
        cur = conn.execute(
            "update app.memberships set provider_id = %s "
            "where practice_id = %s and user_id = %s",
            (provider_id, practice_id, user_id),
        )
        assert cur.rowcount == 1


@dataclass
class World:
    client: TestClient
    practice_id: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)
    provider_id: str = ""
    other_provider_id: str = ""
    own_patient: str = ""
    own_visit: str = ""
    own_call: str = ""

    def api(self, role: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers[role], **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def patient(self, role: str = "front_desk", **fields: Any) -> dict[str, Any]:
        n = uuid.uuid4().hex[:6]
        body = {
            "name": f"Testpatient {n}",
            "birth_date": "1980-02-29",
            "phone": f"+1 555 01{n[:2].translate(_DIGITS)} {n[2:6].translate(_DIGITS)}",
        }
        body.update(fields)
        response = self.api(role, "POST", "/api/v1/patients", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def make_call(self, target: DatabaseTarget, patient_id: str | None = None) -> str:
        """Calls come from agents and telephony; here the system records one."""
        call_id = str(uuid.uuid4())
        with as_owner_role(target, system_claims(self.practice_id)) as conn:
            conn.execute(
                "select phi_api.create_call(%s, 'inbound', null, null, "
                "'2026-03-02T14:00:00Z', 60, %s)",
                (call_id, patient_id),
            )
        return call_id

    def appointment(
        self, patient_id: str, provider_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "patient_id": patient_id,
            "provider_id": provider_id or self.provider_id,
            "starts_at": "2026-03-02T15:00:00Z",
            "ends_at": "2026-03-02T15:30:00Z",
            "reason": "Annual check-up",
        }
        body.update(fields)
        response = self.api("front_desk", "POST", "/api/v1/appointments", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


_DIGITS = str.maketrans("abcdef", "123456")


def build_world(
    client: TestClient, target: DatabaseTarget, *, baa: bool = True
) -> World:
    signed = sign_up(client)
    practice_id = signed["practice"]["id"]
    world = World(client, practice_id)
    world.headers["owner"] = signed["auth"]
    world.user_ids["owner"] = signed["user_id"]
    emails = {role: f"{role}.{uuid.uuid4().hex[:8]}@example.test" for role in ROLES[1:]}

    # One connection for all of the setup rows, each still in its own transaction
    # under its own claims: connecting costs more than the inserts themselves.
    with psycopg.connect(target.conninfo("owner")) as conn:
        if baa:
            _record_baa(conn, practice_id)
        for role, email in emails.items():
            world.user_ids[role] = _insert_member(conn, practice_id, role, email)

    for role, email in emails.items():
        token = client.post(
            "/api/v1/sessions",
            json={"email": email, "password": STRONG_PASSWORD},
        ).json()["token"]
        world.headers[role] = {"Authorization": f"Bearer {token}"}
    if baa:
        for attr, name in (
            ("provider_id", "Dr. Ada Synth"),
            ("other_provider_id", "Dr. Bo Fake"),
        ):
            response = world.api(
                "owner", "POST", "/api/v1/providers", json={"display_name": name}
            )
            assert response.status_code == 201, response.text
            setattr(world, attr, response.json()["id"])
        link_provider(
            target,
            practice_id,
            world.user_ids["owner"],
            world.user_ids["provider"],
            world.provider_id,
        )
    return world
