"""Invitations and the rules around owners: a link works once, for the invited
address, for 72 hours; a manager can neither invite nor make an owner, refused by
the API and again by the database; a practice always keeps one owner."""

from __future__ import annotations

import json

import psycopg
import pytest
from tests.functional.identity.helpers import last_mail_link, sign_in
from tests.support.factories import STRONG_PASSWORD
from tests.support.world import build_world

OTHER_PASSWORD = "copper lantern drifts slowly"


def invite(world, role: str, email: str, by: str = "owner"):
    return world.api(
        by, "POST", "/api/v1/invitations", json={"email": email, "role": role}
    )


def accept(client, token: str, password: str = OTHER_PASSWORD):
    return client.post(
        "/api/v1/invitations/acceptance",
        json={"token": token, "password": password, "full_name": "Invited Testperson"},
    )


def as_service(target, world, role: str) -> psycopg.Connection[tuple[object, ...]]:
    """The application's own database role, acting for the world's `role` member:
    what the database allows whatever the Python code above it does."""
    conn = psycopg.connect(target.conninfo("service"))
    claims = {
        "actor_kind": "user",
        "sub": world.user_ids[role],
        "request_id": "test",
        "practice_id": world.practice_id,
        "practice_role": role,
    }
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)", (json.dumps(claims),)
    )
    return conn


def test_invitation_link_works_for_72_hours_and_no_longer(client, target, clock):
    world = build_world(client, target, baa=False)
    assert invite(world, "biller", "late.biller@example.test").status_code == 201
    token = last_mail_link(target, "late.biller@example.test")

    clock.advance(hours=72)

    refused = accept(client, token)
    assert refused.status_code == 410
    assert refused.json()["code"] == "link_invalid"
    assert (
        sign_in(client, "late.biller@example.test", OTHER_PASSWORD).status_code == 401
    )


def test_invitation_link_still_works_just_before_72_hours(client, target, clock):
    world = build_world(client, target, baa=False)
    invite(world, "biller", "prompt.biller@example.test")
    token = last_mail_link(target, "prompt.biller@example.test")

    clock.advance(hours=71, minutes=59)

    assert accept(client, token).status_code == 201
    joined = sign_in(client, "prompt.biller@example.test", OTHER_PASSWORD)
    assert joined.status_code == 201
    assert joined.json()["state"] == "full"


def test_invitation_link_works_once(client, target):
    world = build_world(client, target, baa=False)
    invite(world, "front_desk", "once@example.test")
    token = last_mail_link(target, "once@example.test")

    assert accept(client, token).status_code == 201
    again = accept(client, token)

    assert again.status_code == 410
    assert again.json()["code"] == "link_invalid"


def test_invitation_for_an_existing_account_needs_that_accounts_password(
    client, target
):
    world = build_world(client, target, baa=False)
    first = build_world(client, target, baa=False)
    member = first.api("owner", "GET", "/api/v1/me").json()
    email = next(
        m["email"]
        for m in first.api("owner", "GET", "/api/v1/members").json()
        if m["user_id"] == member["user_id"]
    )
    invite(world, "manager", email)
    token = last_mail_link(target, email)

    assert accept(client, token, "a wrong password entirely").status_code == 401
    assert accept(client, token, STRONG_PASSWORD).status_code == 201


def test_revoked_invitation_cannot_be_accepted(client, target):
    world = build_world(client, target, baa=False)
    invitation = invite(world, "biller", "revoked@example.test").json()
    token = last_mail_link(target, "revoked@example.test")

    gone = world.api("owner", "DELETE", f"/api/v1/invitations/{invitation['id']}")

    assert gone.status_code == 204
    assert accept(client, token).status_code == 410


def test_manager_cannot_invite_an_owner_through_the_api(client, target):
    world = build_world(client, target, baa=False)

    refused = invite(world, "owner", "would-be-owner@example.test", by="manager")

    assert refused.status_code == 403
    assert invite(world, "biller", "fine@example.test", by="manager").status_code == 201


def test_manager_cannot_invite_an_owner_in_the_database(client, target):
    world = build_world(client, target, baa=False)

    with (
        as_service(target, world, "manager") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            "insert into app.invitations (id, practice_id, email, role, "
            "token_hash, invited_by, created_at, expires_at) values "
            "(gen_random_uuid(), %s, 'x@example.test', 'owner', "
            "sha256('t'), %s, now(), now() + interval '1 hour')",
            (world.practice_id, world.user_ids["manager"]),
        )


def test_manager_cannot_promote_anyone_to_owner_through_the_api(client, target):
    world = build_world(client, target, baa=False)
    biller = world.user_ids["biller"]

    refused = world.api(
        "manager", "PATCH", f"/api/v1/members/{biller}", json={"role": "owner"}
    )

    assert refused.status_code == 403
    roles = {
        m["user_id"]: m["role"]
        for m in world.api("owner", "GET", "/api/v1/members").json()
    }
    assert roles[biller] == "biller"


def test_manager_cannot_make_or_change_an_owner_in_the_database(client, target):
    world = build_world(client, target, baa=False)

    with as_service(target, world, "manager") as conn:
        promoted = conn.execute(
            "update app.memberships set role = 'owner' where practice_id = %s "
            "and user_id = %s",
            (world.practice_id, world.user_ids["biller"]),
        )
        assert promoted.rowcount == 0
        demoted = conn.execute(
            "update app.memberships set role = 'biller' where practice_id = %s "
            "and user_id = %s",
            (world.practice_id, world.user_ids["owner"]),
        )
        assert demoted.rowcount == 0
        conn.commit()

        with pytest.raises(psycopg.Error) as refused:
            conn.execute(
                "insert into app.memberships (practice_id, user_id, role) "
                "values (%s, %s, 'owner')",
                (world.practice_id, world.user_ids["biller"]),
            )
        assert refused.value.sqlstate == "PR403"


def test_last_owner_cannot_be_demoted_or_removed(client, target):
    world = build_world(client, target, baa=False)
    owner = world.user_ids["owner"]

    demoted = world.api(
        "owner", "PATCH", f"/api/v1/members/{owner}", json={"role": "manager"}
    )
    removed = world.api("owner", "DELETE", f"/api/v1/members/{owner}")

    assert demoted.status_code == removed.status_code == 409
    assert demoted.json()["code"] == removed.json()["code"] == "last_owner"
    roles = {
        m["user_id"]: m["role"]
        for m in world.api("owner", "GET", "/api/v1/members").json()
    }
    assert roles[owner] == "owner"


def test_last_owner_is_kept_by_the_database_too(client, target):
    world = build_world(client, target, baa=False)

    with as_service(target, world, "owner") as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(
                "delete from app.memberships where practice_id = %s and user_id = %s",
                (world.practice_id, world.user_ids["owner"]),
            )
        assert refused.value.sqlstate == "PR409"


def test_an_owner_can_step_down_once_there_is_another_owner(client, target):
    world = build_world(client, target, baa=False)
    invite(world, "owner", "second.owner@example.test")
    accept(client, last_mail_link(target, "second.owner@example.test"))
    owner = world.user_ids["owner"]

    stepped_down = world.api(
        "owner", "PATCH", f"/api/v1/members/{owner}", json={"role": "manager"}
    )

    assert stepped_down.status_code == 204
