"""An owner downloads the practice's sealed audit log through the API and the
console and checks it offline: the untouched archive verifies against the key the
API and the console name, one byte changed or one line dropped fails, each
download is recorded as an export, and a role that may not export the audit log
is refused and recorded."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest
from tests.conftest import admin_connection, scratch_dir
from tests.support.console import sign_in_console
from tests.support.world import World, build_world
from tests.unit.audit.c2sp_reference import (
    open_signed_note,
    parse_checkpoint_body,
    parse_verifier_key,
)

from perpetua.audit.checkpoint import generate_key
from perpetua.audit.offline_verify import practice_log_origin, verify_archive
from perpetua.cli import audit_commands
from perpetua.cli.audit_commands import verify_archive_file
from perpetua.crypto.keystore import Keystore
from perpetua.records.vault import Vault


def seal(target, keystore: Keystore) -> int:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(
            audit_commands.seal_database, target.conninfo("service"), keystore
        ).result()


def app_keystore(settings) -> Keystore:
    """The running application's keystore: the one the API derives keys from."""
    return Vault.open(settings.data_dir).keystore


@pytest.fixture
def sealed_world(client, target, settings) -> World:
    world = build_world(client, target)
    patient = world.patient()
    for _ in range(3):
        response = world.api("front_desk", "GET", f"/api/v1/patients/{patient['id']}")
        assert response.status_code == 200, response.text
    assert seal(target, app_keystore(settings)) > 0
    return world


def download(world: World, role: str = "owner"):
    return world.api(role, "GET", "/api/v1/audit/archive")


def save(data: bytes) -> Path:
    path = scratch_dir("perpetua-audit-archive-") / "audit.jsonl"
    path.write_bytes(data)
    return path


def test_owner_archive_verifies_offline_and_any_tampering_fails(
    sealed_world, target, capsys
):
    response = download(sealed_world)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    assert "attachment" in response.headers["content-disposition"]
    key = response.headers["x-audit-verifier-key"]

    path = save(response.content)
    report = verify_archive(path, trusted_key=key)
    assert report.ok, report.message
    assert report.practice_id == sealed_world.practice_id
    assert report.sealed_count == report.event_count >= 4
    assert report.unsealed_count == 0
    exported = report.sealed_count
    assert verify_archive_file(path, key) == 0
    assert "archive ok" in capsys.readouterr().out

    # The last checkpoint in the file is a C2SP note an independent reader accepts.
    last = response.content.splitlines()[-2]
    assert last.startswith(b'{"checkpoint":')
    note = json.loads(last)["checkpoint"]
    body = parse_checkpoint_body(open_signed_note(note, parse_verifier_key(key)))
    assert body.size == report.sealed_count

    # One changed byte in event 2 (line 3, after the header).
    lines = response.content.split(b"\n")
    changed = list(lines)
    changed[3] = changed[3].replace(b'"action":"view"', b'"action":"viex"', 1)
    assert changed[3] != lines[3]
    report = verify_archive(save(b"\n".join(changed)), trusted_key=key)
    assert not report.ok
    assert report.first_bad_index is not None
    assert report.first_bad_index <= 2

    # One dropped event line.
    dropped = list(lines)
    del dropped[4]
    report = verify_archive(save(b"\n".join(dropped)), trusted_key=key)
    assert not report.ok
    assert report.code == "index_gap"
    assert report.first_bad_index == 3
    assert verify_archive_file(save(b"\n".join(dropped)), key) == 1

    # The right file checked against a key other than the log's.
    _skey, other_key = generate_key(practice_log_origin(sealed_world.practice_id))
    report = verify_archive(path, trusted_key=other_key)
    assert not report.ok
    assert report.code == "key_mismatch"

    # The download was recorded as an export by the owner.
    with admin_connection(target) as conn:
        rows = conn.execute(
            "select actor_id::text, actor_role, outcome, row_count "
            "from audit.events where practice_id = %s and action = 'export' "
            "and resource_type = 'audit_log'",
            (sealed_world.practice_id,),
        ).fetchall()
    assert len(rows) == 1
    actor, role, outcome, count = rows[0]
    assert (actor, role, outcome) == (
        sealed_world.user_ids["owner"],
        "owner",
        "success",
    )
    assert count == exported

    # The console shows the same key and serves the same archive, also recorded.
    console = sign_in_console(sealed_world, "owner")
    shown = console.get("/audit")
    assert shown.status_code == 200
    assert key in shown.text
    downloaded = console.get("/audit/archive")
    assert downloaded.status_code == 200
    assert "attachment" in downloaded.headers["content-disposition"]
    report = verify_archive(save(downloaded.content), trusted_key=key)
    assert report.ok, report.message
    with admin_connection(target) as conn:
        exports = conn.execute(
            "select count(*) from audit.events where practice_id = %s "
            "and action = 'export' and resource_type = 'audit_log'",
            (sealed_world.practice_id,),
        ).fetchone()
    assert exports == (2,)

    # The same sealed events as FHIR R4 AuditEvent NDJSON, recorded as well.
    fhir = sealed_world.api("owner", "GET", "/api/v1/audit/fhir")
    assert fhir.status_code == 200, fhir.text
    assert fhir.headers["content-type"].startswith("application/fhir+ndjson")
    resources = [json.loads(line) for line in fhir.content.splitlines()]
    assert len(resources) == exported
    assert {r["resourceType"] for r in resources} == {"AuditEvent"}
    assert [r["extension"][0]["valueInteger"] for r in resources] == list(
        range(exported)
    )
    with admin_connection(target) as conn:
        exports = conn.execute(
            "select count(*) from audit.events where practice_id = %s "
            "and action = 'export' and resource_type = 'audit_log'",
            (sealed_world.practice_id,),
        ).fetchone()
    assert exports == (3,)


def test_export_is_refused_to_other_roles_and_before_any_checkpoint(client, target):
    world = build_world(client, target)

    # Nothing sealed yet: there is nothing an archive could prove.
    response = download(world)
    assert response.status_code == 404, response.text

    fhir = world.api("front_desk", "GET", "/api/v1/audit/fhir")
    assert fhir.status_code == 403, fhir.text

    for role in ("front_desk", "biller"):
        response = download(world, role)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        with admin_connection(target) as conn:
            denied = conn.execute(
                "select count(*) from audit.events where practice_id = %s "
                "and action = 'export' and resource_type = 'audit_log' "
                "and outcome = 'denied' and actor_id = %s",
                (world.practice_id, world.user_ids[role]),
            ).fetchone()
        assert denied == ((2,) if role == "front_desk" else (1,)), role

    # The console offers front desk nothing: the database refuses the log's page
    # (recorded like any refusal) and the download, and the page says so plainly.
    console = sign_in_console(world, "front_desk")
    shown = console.get("/audit")
    assert shown.status_code == 403
    assert "Only owners and managers" in shown.text
    assert 'data-testid="audit-verifier-key"' not in shown.text
    refused = console.get("/audit/archive")
    assert refused.status_code == 403
    assert "application/jsonl" not in refused.headers["content-type"]
