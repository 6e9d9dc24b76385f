"""An owner terminates the Business Associate Agreement: the practice receives an
encrypted export that opens with its passphrase and holds its records, the PHI keys
are destroyed so nothing of the practice decrypts any more, every owner receives
the certificate of destruction, the audit log still verifies, and the practice can
never hold PHI again. Anyone else, a wrong confirmation or a stale sign-in changes
nothing."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from tests.conftest import admin_connection, scratch_dir
from tests.functional.contracts.helpers import (
    deliver,
    delivered,
    owner_only,
    pdf_attachments,
    sign_body,
)
from tests.functional.identity.helpers import enrol_totp
from tests.support.console import post_form, sign_in_console
from tests.support.factories import STRONG_PASSWORD
from tests.support.world import World, as_owner_role, build_world, system_claims

from perpetua.audit.sealing import open_keystore
from perpetua.cli import main as cli
from perpetua.cli.audit_commands import seal_database, verify_database
from perpetua.crypto import DataClass, KeyDestroyed
from perpetua.records.vault import UnreadableRecord, Vault

PASSPHRASE = "correct horse battery staple"


def _practice_name(target, practice_id: str) -> str:
    with admin_connection(target) as conn:
        row = conn.execute(
            "select name from app.practices where id = %s", (practice_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def _terminate(world: World, target, role: str = "owner", **body):
    payload = {"confirmation": _practice_name(target, world.practice_id)}
    payload.update(body)
    return world.api(role, "POST", "/api/v1/baa/termination", json=payload)


def _populated(client, target) -> tuple[World, dict]:
    world = build_world(client, target)
    patient = world.patient(name="Testpatient Shredme", phone="+1 555 0100 2233")
    visit = world.appointment(patient["id"], reason="Synthetic knee review")
    coverage = world.api(
        "owner",
        "PUT",
        f"/api/v1/patients/{patient['id']}/coverage",
        json={"payer": "Synthetic Health", "member_id": "SYN123456"},
    )
    assert coverage.status_code in (200, 201), coverage.text
    world.make_call(target, patient["id"])
    return world, {"patient": patient, "visit": visit}


def _open_export(path: Path, secret: str, monkeypatch, capsys) -> tuple[int, Path]:
    out = path.with_name(f"opened-{uuid.uuid4().hex}.zip")
    monkeypatch.setattr("sys.stdin", io.StringIO(secret + "\n"))
    code = cli.main(["export", "open", str(path), "--out", str(out)])
    capsys.readouterr()
    return code, out


def test_termination_exports_destroys_and_certifies(
    client, target, settings, monkeypatch, capsys
):
    world, made = _populated(client, target)
    patient_id = made["patient"]["id"]

    done = _terminate(world, target, passphrase=PASSPHRASE)

    assert done.status_code == 201, done.text
    out = done.json()
    assert out["export_key"] is None
    termination = out["termination"]
    assert termination["state"] == "destroyed"
    assert termination["export_kdf"] == "scrypt"
    assert termination["export_counts"]["patients"] == 1
    destroyed = {c["data_class"] for c in termination["certificates"]}
    assert {"fields", "blind_index", "backups"} <= destroyed
    assert "audit_signing" not in destroyed
    assert "documents" not in destroyed

    # The export: downloadable by an owner only, ciphertext, opens with the
    # passphrase (and not without it), and holds the practice's records.
    assert (
        world.api("manager", "GET", "/api/v1/baa/termination/export").status_code == 404
    )
    download = world.api("owner", "GET", "/api/v1/baa/termination/export")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == termination["export_sha256"]
    assert b"Testpatient Shredme" not in download.content
    saved = scratch_dir("perpetua-export-") / "practice.ppex"
    saved.write_bytes(download.content)

    code, wrong = _open_export(saved, "not the passphrase at all", monkeypatch, capsys)
    assert code == 1
    assert not wrong.exists()
    code, opened = _open_export(saved, PASSPHRASE, monkeypatch, capsys)
    assert code == 0
    with zipfile.ZipFile(opened) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        patients = [json.loads(x) for x in archive.read("patients.ndjson").splitlines()]
        visits = [
            json.loads(x) for x in archive.read("appointments.ndjson").splitlines()
        ]
        coverages = archive.read("coverages.ndjson").decode()
        calls = archive.read("calls.ndjson").splitlines()
        audit = [json.loads(x) for x in archive.read("audit_log.ndjson").splitlines()]
    assert manifest["practice_id"] == world.practice_id
    assert [p["name"] for p in patients] == ["Testpatient Shredme"]
    assert visits[0]["reason"] == "Synthetic knee review"
    assert "SYN123456" in coverages
    assert len(calls) == 1
    assert any(e["action"] == "create" for e in audit)

    # Nothing of the practice decrypts any more, through the API or with the keys.
    unreadable = world.api("owner", "GET", f"/api/v1/patients/{patient_id}")
    assert unreadable.status_code == 500
    assert unreadable.json()["code"] == "record_unreadable"
    with admin_connection(target) as conn:
        sealed = conn.execute(
            "select name_ct from phi.patients where id = %s", (patient_id,)
        ).fetchone()[0]
    vault = Vault.open(settings.data_dir)
    with pytest.raises(UnreadableRecord):
        vault.open_text(
            uuid.UUID(world.practice_id), "patients", "name", uuid.UUID(patient_id),
            sealed,
        )  # fmt: skip
    with pytest.raises(KeyDestroyed):
        vault.keystore.current(world.practice_id, DataClass.FIELDS)

    # The gate stays shut for good: no new PHI (the service cannot even seal it,
    # and the database refuses it), no new execution.
    refused = world.api(
        "front_desk",
        "POST",
        "/api/v1/patients",
        json={"name": "Testpatient Later", "birth_date": "1990-01-01"},
    )
    assert refused.status_code == 410
    assert refused.json()["code"] == "data_keys_destroyed"
    with (
        as_owner_role(target, system_claims(world.practice_id)) as conn,
        pytest.raises(psycopg.Error) as gate,
    ):
        conn.execute(
            "select phi_api.create_provider(%s, 'Dr. After End', null)",
            (uuid.uuid4(),),
        )
    assert gate.value.sqlstate == "PB002"
    with (
        as_owner_role(target, system_claims(world.practice_id)) as conn,
        pytest.raises(psycopg.Error) as raised,
    ):
        conn.execute(
            "insert into app.baa_executions (practice_id, version, document_sha256) "
            "values (%s, 'test', %s)",
            (world.practice_id, "0" * 64),
        )
    assert raised.value.sqlstate == "PB002"
    signed = world.api("owner", "POST", "/api/v1/baa/signatures", json=sign_body())
    assert signed.status_code == 409
    assert signed.json()["code"] == "baa_terminated"
    status = world.api("front_desk", "GET", "/api/v1/baa").json()
    assert status["in_force"] is False
    assert status["termination"]["state"] == "destroyed"
    again = _terminate(world, target, passphrase=PASSPHRASE)
    assert again.status_code == 409

    # The certificate: downloadable, and mailed to the owner as an attachment.
    certificate = world.api("manager", "GET", "/api/v1/baa/termination/certificate")
    assert certificate.status_code == 200
    assert certificate.content.startswith(b"%PDF-")
    assert (
        hashlib.sha256(certificate.content).hexdigest()
        == termination["certificate_sha256"]
    )
    folder = scratch_dir("perpetua-mail-")
    deliver(client, folder)
    mailed = [m for m in delivered(folder) if "destroyed" in str(m["Subject"])]
    assert len(mailed) == 1
    files = pdf_attachments(mailed[0])
    assert list(files) == ["certificate-of-destruction.pdf"]
    assert files["certificate-of-destruction.pdf"] == certificate.content

    # The audit log, export included, still verifies after the shredding.
    keystore = open_keystore(settings.data_dir)
    assert seal_database(target.conninfo("service"), keystore) > 0
    assert (
        verify_database(
            target.conninfo("owner"), keystore, uuid.UUID(world.practice_id)
        )
        == 0
    )


def test_random_key_is_shown_once_and_opens_the_export(
    client, target, monkeypatch, capsys
):
    world = owner_only(client, target, baa=True)
    world.patient("owner", name="Testpatient Randomkey")

    done = _terminate(world, target)

    assert done.status_code == 201, done.text
    key = done.json()["export_key"]
    assert key.startswith("PPX1-")
    assert done.json()["termination"]["export_kdf"] == "random_key"
    assert key not in world.api("owner", "GET", "/api/v1/baa").text
    saved = scratch_dir("perpetua-export-") / "practice.ppex"
    saved.write_bytes(
        world.api("owner", "GET", "/api/v1/baa/termination/export").content
    )
    code, opened = _open_export(saved, key, monkeypatch, capsys)
    assert code == 0
    with zipfile.ZipFile(opened) as archive:
        assert b"Testpatient Randomkey" in archive.read("patients.ndjson")


def _nothing_changed(world: World, target) -> None:
    with admin_connection(target) as conn:
        count = conn.execute(
            "select count(*) from app.practice_terminations where practice_id = %s",
            (world.practice_id,),
        ).fetchone()[0]
    assert count == 0
    assert world.api("owner", "GET", "/api/v1/baa").json()["in_force"] is True
    assert world.patient("owner")["id"]


def test_a_practice_requiring_mfa_terminates_only_after_a_fresh_second_factor(
    client, target, clock
):
    world = owner_only(client, target, baa=True)
    app, _ = enrol_totp(client, world.headers["owner"], clock)
    required = world.api(
        "owner", "PATCH", "/api/v1/practice/security", json={"require_mfa": True}
    )
    assert required.status_code == 200, required.text
    clock.advance(minutes=11)

    stale = _terminate(world, target, passphrase=PASSPHRASE)
    reauthenticated = world.api(
        "owner",
        "POST",
        "/api/v1/sessions/current/reauthentication",
        json={"password": STRONG_PASSWORD},
    )
    password_only = _terminate(world, target, passphrase=PASSPHRASE)

    assert stale.status_code == 403
    assert stale.json()["code"] == "fresh_second_factor_required"
    assert reauthenticated.status_code == 204
    # A password proven moments ago is not enough where the practice requires MFA.
    assert password_only.status_code == 403
    assert password_only.json()["code"] == "fresh_second_factor_required"
    _nothing_changed(world, target)

    clock.advance(seconds=30)
    confirmed = world.api(
        "owner",
        "POST",
        "/api/v1/sessions/current/second-factor-confirmation",
        json={"code": app.at(clock.now())},
    )
    assert confirmed.status_code == 200, confirmed.text
    done = _terminate(world, target, passphrase=PASSPHRASE)
    assert done.status_code == 201, done.text
    assert done.json()["termination"]["state"] == "destroyed"


@pytest.mark.parametrize("role", ["manager", "front_desk"])
def test_only_an_owner_can_terminate(client, target, role):
    world = build_world(client, target)

    refused = _terminate(world, target, role=role, passphrase=PASSPHRASE)

    assert refused.status_code == 403
    assert refused.json()["code"] == "termination_owner_required"
    _nothing_changed(world, target)


def test_wrong_confirmation_short_passphrase_or_stale_sign_in_change_nothing(
    client, target, clock
):
    world = owner_only(client, target, baa=True)

    wrong = world.api(
        "owner",
        "POST",
        "/api/v1/baa/termination",
        json={"confirmation": "Some Other Practice", "passphrase": PASSPHRASE},
    )
    short = _terminate(world, target, passphrase="short")
    clock.advance(minutes=11)
    stale = _terminate(world, target, passphrase=PASSPHRASE)

    assert wrong.status_code == 422
    assert wrong.json()["code"] == "termination_not_confirmed"
    assert "Some Other Practice" not in wrong.text
    assert short.status_code == 422
    assert stale.status_code == 403
    assert stale.json()["code"] == "reauthentication_required"
    _nothing_changed(world, target)


def test_members_see_the_terminated_state_in_the_console(client, target):
    world = build_world(client, target)
    console = sign_in_console(world, "owner")
    form = console.get("/agreement/terminate")
    assert 'data-testid="terminate-form"' in form.text
    # The owner learns before confirming what becomes of calls under legal hold.
    assert 'data-testid="termination-holds"' in form.text

    done = post_form(
        console,
        "/agreement/terminate",
        {
            "confirmation": _practice_name(target, world.practice_id),
            "passphrase": "",
        },
    )

    assert done.status_code == 200, done.text
    assert 'data-testid="export-key"' in done.text
    key = done.text.split('data-testid="export-key">', 1)[1].split("<", 1)[0]
    assert key.startswith("PPX1-")
    status = console.get("/agreement")
    assert 'data-testid="baa-terminated"' in status.text
    assert key not in status.text
    assert 'action="/agreement/sign"' not in status.text
    sign_in_console(world, "front_desk")
    assert 'data-testid="baa-terminated"' in console.get("/agreement").text
    locked = console.get("/patients").text
    assert 'data-testid="practice-terminated"' in locked
    assert "Review and sign" not in locked
