"""An owner signs the Business Associate Agreement and PHI switches on: the
signature, Perpetua's countersignature and the execution are one transaction;
the PDF is stored encrypted and announced to every owner; nobody but an owner can
sign, neither through the API nor straight in the database; signing twice changes
nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import admin_connection, owner_connection
from tests.support.console import post_form, sign_in_console
from tests.support.world import World, add_member, as_owner_role, build_world

from perpetua.contracts.agreements import current, released
from perpetua.db.target import DatabaseTarget


def _sign_body(**overrides: Any) -> dict[str, Any]:
    agreement = current()
    body: dict[str, Any] = {
        "full_name": "Owner Testperson",
        "title": "Practice owner",
        "consent": True,
        "version": agreement.version,
        "document_sha256": agreement.sha256,
    }
    body.update(overrides)
    return body


def _unsigned(client, target) -> World:
    return build_world(client, target, baa=False)


def _counts(target: DatabaseTarget, practice_id: str) -> dict[str, int]:
    with admin_connection(target) as conn:
        counts = {}
        for table in ("baa_signatures", "baa_executions", "mail_outbox"):
            row = conn.execute(
                f"select count(*) from app.{table} where practice_id = %s",
                (practice_id,),
            ).fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


def _stored(target: DatabaseTarget, practice_id: str) -> dict[str, Any]:
    with admin_connection(target) as conn:
        cur = conn.execute(
            "select s.*, e.version as executed_version, "
            "e.document_sha256 as executed_sha256, e.terminated_at "
            "from app.baa_signatures s "
            "join app.baa_executions e on e.id = s.execution_id "
            "where s.practice_id = %s",
            (practice_id,),
        )
        names = [d.name for d in cur.description or ()]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_every_released_text_is_recorded_with_its_digest(target):
    with owner_connection(target) as conn:
        recorded = dict(
            conn.execute(
                "select version, document_sha256 from app.baa_versions"
            ).fetchall()
        )
    assert recorded == {v: a.sha256 for v, a in released().items()}


def test_owner_signs_and_phi_switches_on(client, target, settings):
    world = _unsigned(client, target)
    second_owner = f"owner2.{uuid.uuid4().hex[:8]}@example.test"
    add_member(target, world.practice_id, "owner", second_owner)

    refused = world.api(
        "front_desk",
        "POST",
        "/api/v1/patients",
        json={"name": "Testpatient Gate", "birth_date": "1980-02-29"},
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "baa_not_signed"
    before = world.api("owner", "GET", "/api/v1/baa").json()
    assert before["in_force"] is False
    assert before["signatures"] == []

    text = world.api("manager", "GET", "/api/v1/baa/agreement").json()
    assert text["sha256"] == hashlib.sha256(text["text"].encode()).hexdigest()
    signed = world.api("owner", "POST", "/api/v1/baa/signatures", json=_sign_body())

    assert signed.status_code == 201, signed.text
    out = signed.json()
    assert out["version"] == text["version"]
    assert out["document_sha256"] == text["sha256"]
    assert out["countersigner"].startswith("Perpetua")
    status = world.api("owner", "GET", "/api/v1/baa").json()
    assert status["in_force"] is True
    assert status["current_signed"] is True

    row = _stored(target, world.practice_id)
    assert row["signer_user_id"] == uuid.UUID(world.user_ids["owner"])
    assert row["signer_name"] == "Owner Testperson"
    assert row["signer_title"] == "Practice owner"
    assert row["signer_user_agent"]
    assert row["consented"] is True
    assert row["executed_version"] == text["version"]
    assert row["executed_sha256"] == text["sha256"]
    assert row["terminated_at"] is None

    pdf = world.api("owner", "GET", f"/api/v1/baa/signatures/{out['id']}/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert hashlib.sha256(pdf.content).hexdigest() == row["pdf_sha256"]

    with admin_connection(target) as conn:
        mail = conn.execute(
            "select to_address, body_text from app.mail_outbox "
            "where practice_id = %s and kind = 'baa_executed'",
            (world.practice_id,),
        ).fetchall()
        owners = {
            r[0]
            for r in conn.execute(
                "select u.email from app.memberships m join app.users u "
                "on u.id = m.user_id where m.practice_id = %s and m.role = 'owner'",
                (world.practice_id,),
            ).fetchall()
        }
    assert {m[0] for m in mail} == owners
    assert len(owners) == 2
    assert all(f"/agreement/executed/{out['id']}.pdf" in m[1] for m in mail)
    assert all(row["pdf_sha256"] in m[1] for m in mail)

    assert world.patient()["id"]


def test_executed_pdf_is_stored_encrypted(client, target, settings):
    world = _unsigned(client, target)
    world.api("owner", "POST", "/api/v1/baa/signatures", json=_sign_body())
    row = _stored(target, world.practice_id)

    stored = Path(settings.data_dir) / "documents" / world.practice_id
    files = list(stored.iterdir())
    assert [f.name for f in files] == [f"{row['pdf_object_id']}.enc"]
    raw = files[0].read_bytes()
    assert b"%PDF" not in raw
    assert b"Owner Testperson" not in raw
    assert files[0].stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("role", ["manager", "biller", "front_desk", "provider"])
def test_non_owner_cannot_sign_through_the_api(client, target, role):
    world = _unsigned(client, target)

    refused = world.api(role, "POST", "/api/v1/baa/signatures", json=_sign_body())

    assert refused.status_code == 403
    assert refused.json()["code"] == "baa_owner_required"
    assert _counts(target, world.practice_id)["baa_signatures"] == 0
    assert world.api(role, "GET", "/api/v1/baa").json()["in_force"] is False


def _direct_insert(conn: psycopg.Connection[Any], practice_id: str, user_id: str):
    agreement = current()
    conn.execute(
        "insert into app.baa_signatures (id, practice_id, version, document_sha256, "
        "signer_user_id, signer_name, signer_title, consented, signed_at, "
        "countersigner, countersigned_at, pdf_object_id, pdf_wrapped_key, "
        "pdf_sha256) values (%s, %s, %s, %s, %s, 'Someone Else', 'Manager', true, "
        "now(), 'Perpetua', now(), %s, '\\x00', %s)",
        (
            uuid.uuid4(),
            practice_id,
            agreement.version,
            agreement.sha256,
            user_id,
            uuid.uuid4(),
            "0" * 64,
        ),
    )


def _claims(world: World, role: str) -> dict[str, Any]:
    return {
        "actor_kind": "user",
        "sub": world.user_ids[role],
        "request_id": "test",
        "practice_id": world.practice_id,
        "practice_role": role,
    }


def test_database_refuses_a_signature_from_a_non_owner(client, target):
    world = _unsigned(client, target)

    with psycopg.connect(target.conninfo("service")) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (json.dumps(_claims(world, "manager")),),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _direct_insert(conn, world.practice_id, world.user_ids["manager"])
        conn.rollback()

        # Nor can the service open the gate without a signature.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into app.baa_executions (practice_id, version, "
                "document_sha256) values (%s, 'x', %s)",
                (world.practice_id, "0" * 64),
            )
        conn.rollback()

    # Even the owning role, under forced row-level security, refuses a manager.
    with (
        as_owner_role(target, _claims(world, "manager")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        _direct_insert(conn, world.practice_id, world.user_ids["manager"])
    assert _counts(target, world.practice_id)["baa_executions"] == 0


def test_an_owner_cannot_sign_in_another_members_name(client, target):
    world = _unsigned(client, target)
    with psycopg.connect(target.conninfo("service")) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, false)",
            (json.dumps(_claims(world, "owner")),),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _direct_insert(conn, world.practice_id, world.user_ids["manager"])


def test_second_signature_of_the_same_version_changes_nothing(client, target, settings):
    world = _unsigned(client, target)
    first = world.api("owner", "POST", "/api/v1/baa/signatures", json=_sign_body())
    counts = _counts(target, world.practice_id)
    files = sorted(
        (Path(settings.data_dir) / "documents" / world.practice_id).iterdir()
    )

    again = world.api(
        "owner",
        "POST",
        "/api/v1/baa/signatures",
        json=_sign_body(full_name="Another Name", title="Another Title"),
    )

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert _counts(target, world.practice_id) == counts
    assert counts == {"baa_signatures": 1, "baa_executions": 1, "mail_outbox": 1}
    assert (
        sorted((Path(settings.data_dir) / "documents" / world.practice_id).iterdir())
        == files
    )


def test_signatures_cannot_be_changed_or_removed(client, target):
    world = _unsigned(client, target)
    world.api("owner", "POST", "/api/v1/baa/signatures", json=_sign_body())
    with admin_connection(target) as conn:
        for statement in (
            "update app.baa_signatures set signer_name = 'Forged Name'",
            "delete from app.baa_signatures",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"consent": False}, 422, "baa_consent_required"),
        ({"full_name": "  x  "}, 422, "baa_signer_invalid"),
        ({"version": "2001-01"}, 409, "baa_version_stale"),
        ({"document_sha256": "f" * 64}, 409, "baa_version_stale"),
    ],
)
def test_signature_needs_consent_details_and_the_current_text(
    client, target, overrides, status, code
):
    world = _unsigned(client, target)

    refused = world.api(
        "owner", "POST", "/api/v1/baa/signatures", json=_sign_body(**overrides)
    )

    assert refused.status_code == status
    assert refused.json()["code"] == code
    assert _counts(target, world.practice_id)["baa_signatures"] == 0


def test_owner_signs_in_the_console_after_the_locked_notice(client, target):
    world = _unsigned(client, target)
    console = sign_in_console(world, "owner")

    locked = console.get("/patients")
    assert 'href="/agreement"' in locked.text
    review = console.get("/agreement")
    assert review.status_code == 200
    assert current().sha256 in review.text
    assert 'name="consent"' in review.text

    unticked = post_form(
        console,
        "/agreement/sign",
        {
            "full_name": "Owner Testperson",
            "title": "Owner",
            "version": current().version,
            "document_sha256": current().sha256,
        },
    )
    assert unticked.status_code == 422
    signed = post_form(
        console,
        "/agreement/sign",
        {
            "full_name": "Owner Testperson",
            "title": "Owner",
            "consent": "yes",
            "version": current().version,
            "document_sha256": current().sha256,
        },
        follow_redirects=False,
    )
    assert signed.status_code == 303
    row = _stored(target, world.practice_id)
    pdf = console.get(f"/agreement/executed/{row['id']}.pdf")
    assert hashlib.sha256(pdf.content).hexdigest() == row["pdf_sha256"]
    assert "New patient" in console.get("/patients").text


def test_manager_sees_the_text_but_no_signing_form(client, target):
    world = _unsigned(client, target)
    console = sign_in_console(world, "manager")

    review = console.get("/agreement")

    assert review.status_code == 200
    assert 'data-testid="baa-owner-only"' in review.text
    assert 'action="/agreement/sign"' not in review.text


def test_openapi_describes_the_baa_routes(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert set(paths["/api/v1/baa"]) == {"get"}
    assert set(paths["/api/v1/baa/agreement"]) == {"get"}
    assert set(paths["/api/v1/baa/signatures"]) == {"post"}
    pdf = paths["/api/v1/baa/signatures/{signature_id}/pdf"]["get"]
    assert "application/pdf" in pdf["responses"]["200"]["content"]


def test_only_owners_and_managers_download_and_only_their_own(client, target):
    world = _unsigned(client, target)
    signed = world.api("owner", "POST", "/api/v1/baa/signatures", json=_sign_body())
    path = f"/api/v1/baa/signatures/{signed.json()['id']}/pdf"
    other = build_world(client, target, baa=False)

    assert world.api("manager", "GET", path).status_code == 200
    assert world.api("front_desk", "GET", path).status_code == 403
    foreign = other.api("owner", "GET", path)
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "baa_document_not_found"


def test_console_refuses_a_manager_who_posts_the_form(client, target):
    world = _unsigned(client, target)
    console = sign_in_console(world, "manager")

    refused = post_form(
        console,
        "/agreement/sign",
        {
            "full_name": "Manager Testperson",
            "title": "Manager",
            "consent": "yes",
            "version": current().version,
            "document_sha256": current().sha256,
        },
    )

    assert refused.status_code == 403
    assert "Only an owner" in refused.text
    assert _counts(target, world.practice_id)["baa_signatures"] == 0
