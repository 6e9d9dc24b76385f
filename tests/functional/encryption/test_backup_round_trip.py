"""A backup made while the application runs verifies, restores into a new empty
database, and a Perpetua app serving that database returns the same records.
The stored dump is ciphertext; a tampered one fails verification; a restore
never lands in a database that already holds data."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient
from tests.conftest import Cluster, scratch_dir
from tests.support.world import build_world

from perpetua.backup import BackupFailed, create_backup, restore_backup, verify_backup
from perpetua.blobs import LocalObjects
from perpetua.cli.main import main
from perpetua.db.embedded import ADMIN_ROLE
from perpetua.db.pool import Database
from perpetua.db.target import DatabaseTarget, ensure_database
from perpetua.records.vault import Vault
from perpetua.web.app import create_app


def _admin(target: DatabaseTarget, dbname: str | None = None) -> dict[str, str]:
    assert target.embedded is not None
    info = {
        **target.owner,
        "user": ADMIN_ROLE,
        "password": target.embedded.admin_password(),
    }
    if dbname:
        info["dbname"] = dbname
    return info


def _empty_database(cluster: Cluster) -> str:
    name = "restored_" + uuid.uuid4().hex[:12]
    with cluster.admin() as conn, conn.cursor() as cur:
        ensure_database(cur, name)  # type: ignore[arg-type]
    return name


def _snapshot(world, patient_ids, visit_id):
    seen = {}
    for pid in patient_ids:
        response = world.api("front_desk", "GET", f"/api/v1/patients/{pid}")
        assert response.status_code == 200, response.text
        seen[pid] = response.json()
    visit = world.api("front_desk", "GET", f"/api/v1/appointments/{visit_id}")
    assert visit.status_code == 200, visit.text
    seen[visit_id] = visit.json()
    return seen


def test_backup_verify_restore_serves_the_same_records(
    client, target, cluster, settings, clock
):
    world = build_world(client, target)
    patients = [world.patient(name=f"Synthia Backup{i}") for i in range(3)]
    visit = world.appointment(patients[0]["id"])
    ids = [p["id"] for p in patients]
    before = _snapshot(world, ids, visit["id"])

    keystore = Vault.open(settings.data_dir).keystore
    objects = LocalObjects(scratch_dir("perpetua-backups-"))
    manifest = create_backup(objects, keystore, _admin(target), embedded=True)
    assert manifest.plaintext_size > 0
    assert manifest.server_version.startswith("16")
    stored = (objects.root / manifest.backup_id / "dump.ppsb").read_bytes()
    assert b"Synthia" not in stored
    assert b"phi.patients" not in stored  # not even the schema is readable
    assert verify_backup(objects, keystore, manifest.backup_id) == manifest

    name = _empty_database(cluster)
    try:
        restore_backup(
            objects, keystore, manifest.backup_id, _admin(target, name), embedded=True
        )
        restored_app = create_app(
            settings,
            Database(cluster.target(name).conninfo("service"), min_size=1),
            clock,
            run_jobs=False,
        )
        with TestClient(restored_app, base_url="https://testserver") as restored:
            world.client = restored
            assert _snapshot(world, ids, visit["id"]) == before
    finally:
        cluster.drop(name)


def test_tampered_backup_fails_verification(blob_target, settings):
    keystore = Vault.open(settings.data_dir).keystore
    objects = LocalObjects(scratch_dir("perpetua-backups-"))
    manifest = create_backup(objects, keystore, _admin(blob_target), embedded=True)
    path = objects.root / manifest.backup_id / "dump.ppsb"
    stored = bytearray(path.read_bytes())
    stored[len(stored) // 2] ^= 0x40
    path.write_bytes(bytes(stored))
    with pytest.raises(BackupFailed) as failure:
        verify_backup(objects, keystore, manifest.backup_id)
    assert failure.value.reason == "segment_authentication"


def test_truncated_backup_restores_nothing(blob_target, cluster, settings):
    keystore = Vault.open(settings.data_dir).keystore
    objects = LocalObjects(scratch_dir("perpetua-backups-"))
    manifest = create_backup(
        objects, keystore, _admin(blob_target), embedded=True, segment_size=4096
    )
    path = objects.root / manifest.backup_id / "dump.ppsb"
    stored = path.read_bytes()
    path.write_bytes(stored[: len(stored) - 200])
    name = _empty_database(cluster)
    try:
        with pytest.raises(BackupFailed):
            restore_backup(
                objects, keystore, manifest.backup_id, _admin(blob_target, name),
                embedded=True,
            )  # fmt: skip
        with cluster.admin(name) as conn:
            tables = conn.execute(
                "select count(*) from pg_tables where schemaname = 'phi'"
            ).fetchone()
        assert tables == (0,)
    finally:
        cluster.drop(name)


def test_restore_refuses_a_database_that_holds_data(blob_target, settings):
    keystore = Vault.open(settings.data_dir).keystore
    objects = LocalObjects(scratch_dir("perpetua-backups-"))
    manifest = create_backup(objects, keystore, _admin(blob_target), embedded=True)
    with pytest.raises(BackupFailed) as failure:
        restore_backup(
            objects, keystore, manifest.backup_id, _admin(blob_target), embedded=True
        )
    assert failure.value.reason == "not_empty"


def test_backup_under_another_keystore_cannot_be_read(blob_target, settings):
    from tests.functional.encryption.helpers import new_keystore

    keystore = Vault.open(settings.data_dir).keystore
    objects = LocalObjects(scratch_dir("perpetua-backups-"))
    manifest = create_backup(objects, keystore, _admin(blob_target), embedded=True)
    stranger = new_keystore(scratch_dir("perpetua-other-keys-"))
    with pytest.raises(BackupFailed) as failure:
        verify_backup(objects, stranger, manifest.backup_id)
    assert failure.value.reason == "key"


def test_backup_commands_create_list_verify_and_restore(
    blob_target, cluster, monkeypatch, capsys
):
    # The commands against the test database as an external server, dumping as
    # a role that sees past row-level security (the cluster's superuser).
    as_admin = DatabaseTarget(owner=_admin(blob_target), service=blob_target.service,
                              embedded=None)  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", as_admin.url("owner"))
    monkeypatch.setenv("SERVICE_DATABASE_URL", blob_target.url("service"))
    data_dir = ["--data-dir", str(scratch_dir("perpetua-backup-cli-"))]

    assert main(["backup", "create", *data_dir]) == 0
    created = capsys.readouterr().out
    backup_id = created.split()[1].rstrip(":")
    assert "stored encrypted" in created

    assert main(["backup", "list", *data_dir]) == 0
    assert backup_id in capsys.readouterr().out
    assert main(["backup", "verify", backup_id, *data_dir]) == 0
    assert "is intact" in capsys.readouterr().out

    name = _empty_database(cluster)
    try:
        into = DatabaseTarget(
            owner=_admin(blob_target, name),
            service=blob_target.service,
            embedded=None,
        ).url("owner")
        assert main(["backup", "restore", backup_id, "--target-url", into,
                     *data_dir]) == 0  # fmt: skip
        with cluster.admin(name) as conn:
            restored = conn.execute(
                "select count(*) from perpetua_meta.schema_migrations"
            ).fetchone()
        with cluster.admin(blob_target.owner["dbname"]) as conn:
            original = conn.execute(
                "select count(*) from perpetua_meta.schema_migrations"
            ).fetchone()
        assert restored == original
        assert main(["backup", "restore", backup_id, "--target-url", into,
                     *data_dir]) == 2  # fmt: skip
        assert "empty database" in capsys.readouterr().err
    finally:
        cluster.drop(name)

    assert main(["backup", "verify", "no-such-backup", *data_dir]) == 2
