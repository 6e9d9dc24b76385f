"""API tokens for a practice's integrations: made only by owners and managers,
shown once and stored as a hash, narrowed by their scopes, refused once revoked,
and every use recorded."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from starlette.testclient import TestClient
from tests.conftest import admin_connection
from tests.support.world import build_world


def create_token(world, role: str = "owner", scopes=("practice:view",)):
    return world.api(
        role,
        "POST",
        "/api/v1/tokens",
        json={"name": "Phone system", "scopes": list(scopes)},
    )


def with_token(world, token: str, path: str):
    return world.client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_owners_and_managers_create_tokens(client, target, role):
    world = build_world(client, target, baa=False)

    made = create_token(world, role)

    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("pt_")


@pytest.mark.parametrize("role", ["biller", "front_desk", "provider"])
def test_other_roles_cannot_create_tokens(client, target, role):
    world = build_world(client, target, baa=False)

    refused = create_token(world, role)

    assert refused.status_code == 403
    assert world.api("owner", "GET", "/api/v1/tokens").json() == []


def test_token_is_shown_once_and_stored_only_as_a_hash(client, target):
    world = build_world(client, target, baa=False)
    made = create_token(world).json()

    listed = world.api("owner", "GET", "/api/v1/tokens").json()

    assert [t["id"] for t in listed] == [made["id"]]
    assert made["token"] not in str(listed)
    with admin_connection(target) as conn:
        stored = conn.execute(
            "select token_hash::text, row_to_json(t)::text "
            "from app.api_tokens t where id = %s",
            (made["id"],),
        ).fetchone()
    assert stored is not None
    digest = hashlib.sha256(made["token"].encode()).hexdigest()
    assert stored[0] == "\\x" + digest
    assert made["token"] not in stored[1]
    assert made["token"][3:] not in stored[1]


def test_scopes_narrow_what_a_token_reaches(client, target):
    world = build_world(client, target, baa=False)
    practice_only = create_token(world, scopes=["practice:view"]).json()["token"]
    members_only = create_token(world, scopes=["members:view"]).json()["token"]

    assert with_token(world, practice_only, "/api/v1/practice").status_code == 200
    refused = with_token(world, practice_only, "/api/v1/members")
    assert refused.status_code == 403
    assert refused.json()["code"] == "scope_missing"

    assert with_token(world, members_only, "/api/v1/members").status_code == 200
    assert with_token(world, members_only, "/api/v1/practice").status_code == 403


def test_token_reaches_no_route_that_declares_no_scope(client, target):
    world = build_world(client, target, baa=False)
    token = create_token(world, scopes=["practice:view", "members:view"]).json()

    for path in ("/api/v1/me", "/api/v1/tokens", "/api/v1/sessions"):
        refused = with_token(world, token["token"], path)
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "api_token_not_allowed"


def test_unknown_scope_is_refused(client, target):
    world = build_world(client, target, baa=False)

    assert create_token(world, scopes=["clinical:view"]).status_code == 422
    assert create_token(world, scopes=[]).status_code == 422


def test_revoked_token_is_refused(client, target):
    world = build_world(client, target, baa=False)
    made = create_token(world).json()
    assert with_token(world, made["token"], "/api/v1/practice").status_code == 200

    revoked = world.api("manager", "DELETE", f"/api/v1/tokens/{made['id']}")

    assert revoked.status_code == 204
    refused = with_token(world, made["token"], "/api/v1/practice")
    assert refused.status_code == 401
    listed = world.api("owner", "GET", "/api/v1/tokens").json()
    assert listed[0]["revoked_at"] is not None


def test_token_stops_when_its_creator_leaves_the_practice(client, target):
    world = build_world(client, target, baa=False)
    made = create_token(world, "manager").json()

    removed = world.api(
        "owner", "DELETE", f"/api/v1/members/{world.user_ids['manager']}"
    )

    assert removed.status_code == 204
    assert with_token(world, made["token"], "/api/v1/practice").status_code == 401


def test_each_use_records_when_and_from_where(client, target, clock):
    world = build_world(client, target, baa=False)
    made = create_token(world).json()
    listed = world.api("owner", "GET", "/api/v1/tokens").json()
    assert listed[0]["last_used_at"] is None
    integration = TestClient(
        client.app, base_url="https://testserver", client=("198.51.100.7", 4000)
    )

    clock.advance(minutes=3)
    used = integration.get(
        "/api/v1/practice", headers={"Authorization": f"Bearer {made['token']}"}
    )

    assert used.status_code == 200
    listed = world.api("owner", "GET", "/api/v1/tokens").json()
    used_at = dt.datetime.fromisoformat(listed[0]["last_used_at"])
    assert used_at == clock.now()
    assert listed[0]["last_used_ip"] == "198.51.100.7"


def test_creating_and_revoking_a_token_is_in_the_security_history(client, target):
    world = build_world(client, target, baa=False)
    made = create_token(world).json()
    world.api("owner", "DELETE", f"/api/v1/tokens/{made['id']}")

    events = world.api("owner", "GET", "/api/v1/practice/security-events").json()

    kinds = [e["kind"] for e in events]
    assert "practice:api_token:created" in kinds
    assert "practice:api_token:revoked" in kinds
